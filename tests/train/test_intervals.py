"""Checkpoint and evaluation intervals in epochs or minutes; a resume replays the epochs after
the last checkpoint bit-identically."""

from __future__ import annotations

import pytest
import torch

from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.errors import ConfigError
from oodlab.train import checkpoint
from oodlab.train.loop import train
from oodlab.train.recipes import Recipe
from oodlab.train.run import read_log

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 3, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "ce"},
}


def config(*overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(BASE, overrides))


def _saved_epochs(monkeypatch, run, *overrides: str) -> tuple[list[int], list[int]]:
    saved: list[int] = []
    original = checkpoint.save

    def record(run_dir, state):
        saved.append(int(state["epoch"]))
        return original(run_dir, state)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "save", record)
        train(config(*overrides), run)
    rows = [r for r in read_log(run) if r["scope"] == "epoch"]
    return saved, [r["epoch"] for r in rows if "id_accuracy" in r]


BY_TIME = ("train.checkpoint_every=0", "train.checkpoint_minutes=1e-9")
BY_TIME += ("train.eval_every=0", "train.eval_minutes=1e-9")


@pytest.mark.parametrize(
    ("overrides", "checkpoints", "evaluated"),
    [
        (("train.checkpoint_every=2", "train.eval_every=2"), [2, 3], [1, 2]),
        (("train.checkpoint_every=0",), [3], [0, 1, 2]),  # the stage's end only
        (BY_TIME, [1, 2, 3], [0, 1, 2]),  # a tiny interval in minutes: every epoch
    ],
)
def test_intervals_in_epochs_and_minutes(tmp_path, monkeypatch, overrides, checkpoints, evaluated):
    saved, measured = _saved_epochs(monkeypatch, tmp_path / "run", *overrides)
    assert saved == checkpoints
    assert measured == evaluated


@pytest.mark.parametrize(
    "override", ["train.checkpoint_every=-1", "train.checkpoint_minutes=0", "train.eval_minutes=-2"]
)
def test_bad_intervals_fail_in_one_line(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        config(override)


class SimulatedCrashError(RuntimeError):
    pass


@pytest.mark.slow
def test_a_resume_replays_the_epochs_after_a_sparse_checkpoint_bit_identically(
    tmp_path, monkeypatch
):
    every = ("train.epochs=4", "train.checkpoint_every=2")
    full = tmp_path / "full"
    train(config(*every), full)
    steps_per_epoch = int(checkpoint.load_latest(full)["step"]) // 4

    def crash(self, batch):
        if batch.step == 3 * steps_per_epoch + 1:  # inside epoch 3; epoch 2 was not saved
            raise SimulatedCrashError

    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        patch.setattr(Recipe, "after_step", crash)
        with pytest.raises(SimulatedCrashError):
            train(config(*every), crashed)
    assert checkpoint.load_latest(crashed)["epoch"] == 2
    train(config("train.epochs=4", "train.checkpoint_every=1"), crashed, resume=True)
    a, b = checkpoint.load_latest(crashed), checkpoint.load_latest(full)
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert [r["epoch"] for r in read_log(crashed) if r["scope"] == "epoch"] == [0, 1, 2, 3]
