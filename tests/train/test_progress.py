"""Visible training: one line per epoch, a persistent bar, TensorBoard, a clean resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from oodlab.cli import main
from oodlab.train.progress import epoch_line
from oodlab.train.run import read_log

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke" / "synthetic_oe.yaml"


def test_epoch_line_names_every_loss_term_accuracy_rate_and_eta():
    row = {
        "scope": "epoch",
        "stage": "main",
        "stage_index": 0,
        "epoch": 2,
        "step": 30,
        "loss": 0.41234,
        "oe": 0.1,
        "lr": 0.00095,
        "images_per_s": 2310.4,
        "id_accuracy": 0.8125,
    }
    line = epoch_line(row, 10, 83.4)
    assert line == (
        "main 3/10  loss 0.4123  oe 0.1000  acc 81.25%  lr 0.00095  2,310 img/s  ETA 0:01:23"
    )


def _train(run: Path, *extra: str) -> int:
    args = ["train", str(CONFIG), "--run-dir", str(run), "--set", "train.device=cpu"]
    return main([*args, "--set", "train.epochs=2", *extra])


def test_training_prints_one_line_per_epoch_and_resume_of_a_finished_run_says_so(tmp_path, capsys):
    tensorboard = pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert _train(run, "--set", "train.tensorboard=true") == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("main ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("loss " in line and "img/s" in line and "ETA" in line for line in lines)
    assert "acc " in lines[-1]
    # TensorBoard mirrors the JSON log
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert tensorboard is not None
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [r["loss"] for r in read_log(run) if r["scope"] == "epoch"]
    mirrored = [e.value for e in events.Scalars("main/epoch/loss")]
    assert mirrored == pytest.approx(logged, rel=1e-6)
    # resuming the finished run trains nothing and prints no NaN rate
    assert _train(run, "--resume") == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower()
    assert "already finished its 2 epochs" in out
