"""The training loop: learning, exact resume after SIGKILL, corrupted checkpoints, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.errors import CheckpointError, ConfigError, UnknownNameError
from oodlab.io import safe_torch_load
from oodlab.train import checkpoint
from oodlab.train.loop import lr_factor, train
from oodlab.train.run import load_model_from_run, read_log

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 4, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "oe"},
}


def config(*overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(BASE, overrides))


def test_training_decreases_the_loss_and_writes_the_run_folder(tmp_path):
    result = train(config("train.epochs=6"), tmp_path / "run")
    run = tmp_path / "run"
    log = read_log(run)
    assert [row["epoch"] for row in log] == list(range(6))
    assert log[-1]["ce"] < log[0]["ce"]
    for name in [
        "config.yaml",
        "meta.json",
        "class_counts.json",
        "model.pt",
        "checkpoint.pt",
        "train_summary.json",
    ]:
        assert (run / name).is_file(), name
    assert json.loads((run / "class_counts.json").read_text()) == [64, 40, 25, 16]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 0
    assert meta["image_shape"] == [1, 16, 16]
    model = load_model_from_run(run)
    # The saved model reproduces the accuracy the loop reported, computed here independently.
    from oodlab.data import build_benchmark

    test = build_benchmark("synthetic").test
    with torch.no_grad():
        predictions = model(test.images.float() / 255).argmax(1)
    assert (predictions == test.targets).float().mean().item() == pytest.approx(
        result.final_accuracy
    )


def test_lr_schedules():
    cfg = config("train.epochs=4").train
    assert [lr_factor(s, 10, cfg) for s in (0, 9, 10, 20, 39)] == pytest.approx(
        [
            1.0,
            1.0,
            0.5 * (1 + 2**-0.5),
            0.5,
            0.5 * (1 + torch.cos(torch.tensor(3 * torch.pi / 4)).item()),
        ]
    )
    step = config("train.schedule=multistep", "train.milestones=[1, 3]", "train.gamma=0.1").train
    assert [lr_factor(s, 10, step) for s in (5, 15, 35)] == pytest.approx([1.0, 0.1, 0.01])
    warm = config("train.warmup_epochs=1").train
    assert lr_factor(4, 10, warm) == pytest.approx(0.5)


SCRIPT = """
import sys
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.train.loop import train
base = {base!r}
cfg = from_dict(RunConfig, apply_overrides(base, ["train.epochs=8"]))
train(cfg, sys.argv[1], resume=len(sys.argv) > 2)
"""


def _run(run_dir: Path, resume: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-c", SCRIPT.format(base=BASE), str(run_dir)] + (
        ["resume"] if resume else []
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    reference = _run(tmp_path / "reference")
    interrupted = _run(tmp_path / "interrupted")
    record = tmp_path / "interrupted" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if record.is_file() and json.loads(record.read_text()).get("epoch", 0) >= 3:
            break
        time.sleep(0.02)
    time.sleep(0.05)  # land somewhere inside the next epoch
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "interrupted" / "model.pt").exists(), "the run finished before the kill"
    resumed = _run(tmp_path / "interrupted", resume=True)
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    assert reference.wait() == 0, reference.stderr.read().decode()
    a = safe_torch_load(tmp_path / "reference" / "model.pt")
    b = safe_torch_load(tmp_path / "interrupted" / "model.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in read_log(tmp_path / "interrupted")] == list(range(8))


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    run = tmp_path / "run"
    train(config("train.epochs=2"), run)
    latest = run / "checkpoint.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        checkpoint.load_verified(latest)
    with pytest.warns(UserWarning, match="previous checkpoint"):
        state = checkpoint.load_latest(run)
    assert state["epoch"] == 1
    # A truncated file with no good previous checkpoint is reported, never half-loaded.
    (run / "checkpoint.prev.pt").unlink()
    latest.write_bytes(bytes(data[:100]))
    with pytest.raises(CheckpointError):
        checkpoint.load_latest(run)


def test_resume_of_an_interrupted_run_continues(tmp_path):
    run = tmp_path / "run"
    train(config("train.epochs=2"), run)
    (run / "model.pt").unlink()
    result = train(config("train.epochs=3"), run, resume=True)
    assert result.epochs == 3
    assert [r["epoch"] for r in read_log(run)] == [0, 1, 2]


def test_existing_run_needs_resume(tmp_path):
    train(config("train.epochs=1"), tmp_path / "run")
    with pytest.raises(ConfigError, match="--resume"):
        train(config("train.epochs=1"), tmp_path / "run")


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (("train.epochs=0",), ConfigError, "epochs"),
        (("train.lrr=0.1",), ConfigError, "Did you mean 'lr'"),
        (("train.lr=fast",), ConfigError, "expected a number"),
        (("train.optimizer=rmsprop",), ConfigError, "adam"),
    ],
)
def test_bad_config_fails_with_one_line(overrides, error, match):
    with pytest.raises(error, match=match) as info:
        config(*overrides)
    assert "\n" not in str(info.value)


def test_unknown_method_model_or_option(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown method 'oee'"):
        train(config("method.name=oee"), tmp_path / "a")
    with pytest.raises(UnknownNameError, match="unknown model"):
        train(config("model.name=resnet99"), tmp_path / "b")
    with pytest.raises(ConfigError, match="unknown key 'wieght'"):
        train(config("method.options.wieght=1"), tmp_path / "c")
