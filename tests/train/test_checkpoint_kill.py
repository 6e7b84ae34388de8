"""A kill between any two steps of the checkpoint rotation still resumes: the next load finds
the newest complete checkpoint, the next save does not fail, and stale temporaries go."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from oodlab.locks import folder_lock
from oodlab.train import checkpoint
from oodlab.train.guards import prepare_run_dir


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (a BaseException, so no handler eats it)."""


def state(epoch: int) -> dict:
    return {"epoch": epoch, "stage": 0, "model": {"w": torch.full((3,), float(epoch))}}


def saved_epochs(run) -> dict[str, int]:
    """The epoch of every checkpoint file that verifies."""
    out = {}
    for name in ("checkpoint", "checkpoint.prev", "checkpoint.next"):
        path = run / f"{name}.pt"
        if path.is_file():
            try:
                out[name] = int(checkpoint.load_verified(path)["epoch"])
            except Exception:
                out[name] = -1
    return out


def test_a_kill_at_every_step_of_the_rotation_still_resumes(tmp_path, monkeypatch):
    real = os.replace
    probe = tmp_path / "probe"
    probe.mkdir()
    calls: list[str] = []
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(str(b)), real(a, b))[1])
    checkpoint.save(probe, state(1))
    checkpoint.save(probe, state(2))
    calls.clear()
    checkpoint.save(probe, state(3))
    steps = len(calls)
    assert steps == 6  # two atomic writes, then four renames
    for kill_at in range(steps + 1):
        run = tmp_path / f"kill{kill_at}"
        run.mkdir()
        monkeypatch.setattr(os, "replace", real)
        checkpoint.save(run, state(1))
        checkpoint.save(run, state(2))
        done = [0]

        def replace(a, b, kill_at=kill_at, done=done):
            if done[0] == kill_at:
                raise Killed
            done[0] += 1
            real(a, b)

        monkeypatch.setattr(os, "replace", replace)
        if kill_at < steps:
            with pytest.raises(Killed):
                checkpoint.save(run, state(3))
        else:
            checkpoint.save(run, state(3))
        monkeypatch.setattr(os, "replace", real)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an interrupted rotation is no defect to warn of
            resumed = checkpoint.load_latest(run)
        assert resumed is not None
        # Epoch 3 is kept once its bytes and record were complete (after the two writes).
        assert resumed["epoch"] == (3 if kill_at >= 2 else 2), kill_at
        assert torch.equal(resumed["model"]["w"], torch.full((3,), float(resumed["epoch"])))
        checkpoint.save(run, state(4))  # the next save never fails
        assert saved_epochs(run) == {"checkpoint": 4, "checkpoint.prev": resumed["epoch"]}
        assert checkpoint.load_latest(run)["epoch"] == 4


def test_a_deleted_record_falls_back_to_the_previous_checkpoint_and_saves_again(tmp_path):
    checkpoint.save(tmp_path, state(1))
    checkpoint.save(tmp_path, state(2))
    (tmp_path / "checkpoint.json").unlink()
    with pytest.warns(UserWarning, match="resuming from checkpoint.prev.pt"):
        assert checkpoint.load_latest(tmp_path)["epoch"] == 1
    checkpoint.save(tmp_path, state(2))  # no FileNotFoundError on the missing record
    assert checkpoint.load_latest(tmp_path)["epoch"] == 2


def test_a_torn_write_of_the_next_checkpoint_is_discarded(tmp_path):
    checkpoint.save(tmp_path, state(1))
    (tmp_path / "checkpoint.next.pt").write_bytes(b"half a checkpoint")  # no record yet
    assert checkpoint.load_latest(tmp_path)["epoch"] == 1
    assert not (tmp_path / "checkpoint.next.pt").exists()


def test_stale_temporaries_are_removed_when_a_run_starts(tmp_path):
    from oodlab.config import RunConfig

    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".checkpoint.next.pt.k2j4h1x0.tmp"
    stale.write_bytes(b"\0" * 1024)
    keep = run / "notes.txt"
    keep.write_text("mine")
    with folder_lock(run):  # as every run, bench and evaluation takes its folder
        prepare_run_dir(run, RunConfig(), resume=False, files=("checkpoint.pt", "model.pt"))
    assert not stale.exists()
    assert keep.read_text() == "mine"
