"""A non-finite loss stops the run at that step in one line (term and step named, the last
good checkpoint kept, exit status 2), or, with ``train.nonfinite=skip``, skips the step."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from oodlab.cli import main
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.errors import TrainingDivergedError
from oodlab.train import checkpoint, loop
from oodlab.train.run import read_log

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 32, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 3, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "oe"},
}


def poison(monkeypatch, bad_steps: set[int]) -> None:
    """The real recipe, with its ``oe`` term (and so the loss) NaN at ``bad_steps``."""
    build = loop.build_recipe

    def build_poisoned(*args, **kwargs):
        recipe = build(*args, **kwargs)
        real_loss = recipe.loss

        def loss(net, batch):
            total, logs = real_loss(net, batch)
            if batch.step in bad_steps:
                logs = {**logs, "oe": torch.tensor(float("nan"))}
                total = total + logs["oe"]
            return total, logs

        recipe.loss = loss
        return recipe

    monkeypatch.setattr(loop, "build_recipe", build_poisoned)


def steps_per_epoch(tmp_path) -> int:
    run = tmp_path / "probe"
    loop.train(from_dict(RunConfig, apply_overrides(BASE, ["train.epochs=1"])), run)
    return int(next(r for r in read_log(run) if r["scope"] == "epoch")["step"])


def test_a_nan_loss_stops_at_its_step_in_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    per_epoch = steps_per_epoch(tmp_path)
    bad = per_epoch + 2  # the third step of the second epoch
    poison(monkeypatch, {bad})
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(BASE))
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert f"loss term(s) loss, oe became NaN or infinite at step {bad} (epoch 1 " in err[0]
    assert "the last good checkpoint is kept" in err[0]
    kept = checkpoint.load_latest(run)
    assert kept is not None
    assert kept["epoch"] == 1  # epoch 0's checkpoint, nothing of epoch 1 saved
    assert all(torch.isfinite(t).all() for t in kept["model"].values() if t.is_floating_point())
    assert not (run / "model.pt").exists()
    assert [r["epoch"] for r in read_log(run) if r["scope"] == "epoch"] == [0]


def test_a_nan_in_the_first_epoch_says_no_checkpoint_was_written(tmp_path, monkeypatch):
    poison(monkeypatch, {0})
    with pytest.raises(TrainingDivergedError, match=r"at step 0 .*no checkpoint had been") as info:
        loop.train(from_dict(RunConfig, BASE), tmp_path / "run")
    assert "\n" not in str(info.value)
    assert checkpoint.load_latest(tmp_path / "run") is None


def test_skip_mode_drops_the_bad_steps_and_counts_them(tmp_path, monkeypatch):
    per_epoch = steps_per_epoch(tmp_path)
    poison(monkeypatch, {1, per_epoch + 1, per_epoch + 2})
    run = tmp_path / "run"
    config = from_dict(RunConfig, apply_overrides(BASE, ["train.nonfinite=skip"]))
    result = loop.train(config, run)
    rows = [r for r in read_log(run) if r["scope"] == "epoch"]
    assert [r["skipped_steps"] for r in rows] == [1, 2, 0]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["oe"]) for r in rows)
    assert result.final_accuracy == result.final_accuracy  # not NaN
    final = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in final.values() if t.is_floating_point())


def test_every_step_skipped_stops_all_the_same(tmp_path, monkeypatch):
    poison(monkeypatch, set(range(1000)))
    config = from_dict(RunConfig, apply_overrides(BASE, ["train.nonfinite=skip"]))
    with pytest.raises(TrainingDivergedError, match="every step of epoch 0"):
        loop.train(config, tmp_path / "run")


def test_a_huge_learning_rate_is_stopped_not_saved(tmp_path):
    config = from_dict(
        RunConfig,
        apply_overrides(BASE, ["train.optimizer=sgd", "train.lr=1.0e+30", "method.name=ce"]),
    )
    with pytest.raises(TrainingDivergedError, match="training diverged"):
        loop.train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "model.pt").exists()
