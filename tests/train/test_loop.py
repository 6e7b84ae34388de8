"""The training loop: learning, the run folder, exact resume (SIGKILL and in-process crash,
multi-stage recipes), corrupted checkpoints, and bad configs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.data import build_benchmark
from oodlab.errors import CheckpointError, ConfigError, UnknownNameError
from oodlab.io import safe_torch_load
from oodlab.train import checkpoint
from oodlab.train.loop import train
from oodlab.train.run import load_model_from_run, read_log

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 3, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "oe"},
}


def config(*overrides: str, base: dict | None = None) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(base or BASE, overrides))


def epoch_rows(run: Path) -> list[dict]:
    return [row for row in read_log(run) if row["scope"] == "epoch"]


def test_training_decreases_the_loss_and_writes_the_run_folder(tmp_path):
    run = tmp_path / "run"
    result = train(config("train.epochs=5", "train.log_every=4"), run)
    log = epoch_rows(run)
    assert [row["epoch"] for row in log] == list(range(5))
    assert log[-1]["ce"] < 0.8 * log[0]["ce"]
    assert all(row["images_per_s"] > 0 and "oe" in row for row in log)
    assert [r["step"] for r in read_log(run) if r["scope"] == "step"] == [
        4,
        8,
        12,
        16,
        20,
        24,
        28,
        32,
        36,
        40,
        44,
    ]
    names = ["config.yaml", "meta.json", "class_counts.json", "model.pt", "model.json"]
    assert all((run / name).is_file() for name in [*names, "checkpoint.pt", "train_summary.json"])
    assert json.loads((run / "class_counts.json").read_text()) == [64, 40, 25, 16]
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["seed"], meta["world_size"], meta["image_shape"]) == (0, 1, [1, 16, 16])
    # The saved model reproduces the accuracy the loop reported, computed here independently.
    model = load_model_from_run(run)
    test = build_benchmark("synthetic").test
    with torch.no_grad():
        accuracy = (model(test.images.float() / 255).argmax(1) == test.targets).float().mean()
    assert accuracy.item() == pytest.approx(result.final_accuracy)
    assert result.final_accuracy > 0.25  # better than chance on 4 classes


SCRIPT = """
import sys, time
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.train.loop import train
from oodlab.train.methods.oe import OERecipe
loss = OERecipe.loss
def slow_loss(self, net, batch):  # a few ms per step, so that the kill lands inside an epoch
    time.sleep(0.01)
    return loss(self, net, batch)
OERecipe.loss = slow_loss
cfg = from_dict(RunConfig, apply_overrides({base!r}, ["train.epochs=6"]))
train(cfg, sys.argv[1], resume=len(sys.argv) > 2)
"""


def _start(run_dir: Path, resume: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-c", SCRIPT.format(base=BASE), str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        args + (["resume"] if resume else []),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    reference = _start(tmp_path / "reference")
    interrupted = _start(tmp_path / "interrupted")
    record = tmp_path / "interrupted" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if record.is_file() and (json.loads(record.read_text()).get("epoch") or 0) >= 2:
            break
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.1))  # somewhere inside the next epoch
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "interrupted" / "model.pt").exists(), "the run finished before the kill"
    resumed = _start(tmp_path / "interrupted", resume=True)
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    assert reference.wait() == 0, reference.stderr.read().decode()
    a = safe_torch_load(tmp_path / "reference" / "model.pt")
    b = safe_torch_load(tmp_path / "interrupted" / "model.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in epoch_rows(tmp_path / "interrupted")] == list(range(6))


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    run = tmp_path / "run"
    train(config("train.epochs=2"), run)
    latest = run / "checkpoint.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted") as info:
        checkpoint.load_verified(latest)
    assert "\n" not in str(info.value)
    with pytest.warns(UserWarning, match=r"resuming from checkpoint\.prev\.pt"):
        state = checkpoint.load_latest(run)
    assert state["epoch"] == 1
    # Resuming from the previous checkpoint redoes the last epoch and finishes.
    (run / "model.pt").unlink()
    with pytest.warns(UserWarning, match="checkpoint.prev.pt"):
        train(config("train.epochs=2"), run, resume=True)
    assert [r["epoch"] for r in epoch_rows(run)] == [0, 1]
    # Truncated files with no good one left: one line, nothing half-loaded.
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run / name).write_bytes((run / name).read_bytes()[:100])
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        checkpoint.load_latest(run)


def test_a_crash_inside_the_checkpoint_rotation_leaves_a_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = torch.nn.Linear(2, 2)
    for epoch in (1, 2):
        checkpoint.save(run, {"epoch": epoch, "model": model.state_dict()})
    # Replay the next save by hand and stop halfway through the rotation: the new checkpoint
    # is written, checkpoint.pt has become checkpoint.prev.pt, but the records were not moved.
    checkpoint.save(run, {"epoch": 3, "model": model.state_dict()})
    os.replace(run / "checkpoint.pt", run / "checkpoint.next.pt")
    os.replace(run / "checkpoint.json", run / "checkpoint.next.json")
    os.replace(run / "checkpoint.prev.pt", run / "checkpoint.pt")  # epoch 2 under the new name
    # The loader rolls the interrupted rotation forward: epoch 3 becomes the latest checkpoint
    # and nothing of the half-done rotation is left behind.
    assert checkpoint.load_latest(run)["epoch"] == 3
    assert not (run / "checkpoint.next.pt").exists()
    assert not (run / "checkpoint.next.json").exists()
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 3


def test_resume_extends_a_finished_run_and_a_resume_of_nothing_fails(tmp_path):
    run = tmp_path / "run"
    train(config("train.epochs=2"), run)
    result = train(config("train.epochs=3"), run, resume=True)
    assert result.epochs == 3
    assert [r["epoch"] for r in epoch_rows(run)] == [0, 1, 2]
    with pytest.raises(ConfigError, match="--resume"):
        train(config("train.epochs=1"), run)
    with pytest.raises(ConfigError, match="holds no run to continue"):  # never a silent start
        train(config("train.epochs=1"), tmp_path / "fresh", resume=True)
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (("train.epochs=0",), ConfigError, "epochs"),
        (("train.lrr=0.1",), ConfigError, "Did you mean 'lr'"),
        (("train.lr=fast",), ConfigError, "expected a number"),
        (("train.optimizer=rmsprop",), ConfigError, "adam"),
        (("train.device=gpu",), ConfigError, "train.device"),
        (("model.mean=[0.5]",), ConfigError, "model.std"),
        (("data.batch_size=[16]",), ConfigError, "expected an integer"),
    ],
)
def test_bad_config_fails_with_one_line(overrides, error, match):
    with pytest.raises(error, match=match) as info:
        config(*overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ("method.name=oee", UnknownNameError, "unknown method 'oee'. Did you mean 'oe'"),
        ("model.name=resnet99", UnknownNameError, "unknown model 'resnet99'"),
        ("method.options.wieght=1", ConfigError, "unknown key 'wieght'. Did you mean 'weight'"),
        ("method.options.weight=heavy", ConfigError, "expected a number"),
        ("model.options.widht=1", ConfigError, "widht"),
        ("data.benchmark=nope", UnknownNameError, "unknown benchmark 'nope'"),
    ],
)
def test_unknown_names_and_options_fail_with_one_line(tmp_path, override, error, match):
    with pytest.raises(error, match=match) as info:
        train(config(override), tmp_path / "run")
    assert "\n" not in str(info.value)


def test_speed_options_and_a_step_budget(tmp_path):
    run = tmp_path / "run"
    options = ("train.channels_last=true", "train.amp=true", "train.max_steps=12")
    result = train(config("train.epochs=3", *options), run)
    rows = epoch_rows(run)
    # 9 steps per epoch: the budget of 12 ends training inside the second epoch.
    assert [(r["epoch"], r["step"]) for r in rows] == [(0, 9), (1, 12)]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert checkpoint.load_latest(run)["epoch"] == 3  # the stage counts as finished
    assert 0 <= result.final_accuracy <= 1
