"""One writer per run folder: a second process fails at once in one line naming the holder's
pid, the first one's files stay whole, and a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from oodlab.cli import main
from oodlab.locks import LOCK_NAME, FolderLockedError, acquire, folder_lock, release

SRC = str(Path(__file__).resolve().parents[1] / "src")
CONFIG = {
    "data": {
        "benchmark": "synthetic",
        "options": {"n_max": 16, "n_test_per_class": 4, "n_ood": 8, "n_aux": 8},
        "batch_size": 8,
    },
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 1, "device": "cpu", "quiet": True, "lr": 0.003},
}


def _env() -> dict[str, str]:
    path = SRC + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


# The first run pauses after its first checkpoint until the test says go, so the second
# writer meets a run that is certainly in progress, however slow the machine.
PAUSING_TRAIN = """
import sys, time
from pathlib import Path
import oodlab.train.checkpoint as checkpoint
from oodlab.cli import main
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
save = checkpoint.save
def pausing_save(run_dir, state):
    out = save(run_dir, state)
    if not ready.exists():
        ready.write_text("saved")
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return out
checkpoint.save = pausing_save
raise SystemExit(main(sys.argv[3:]))
"""


def test_a_second_writer_fails_in_one_line_and_the_first_run_stays_consistent(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "epochs": 3}}))
    run, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    argv = ["train", str(config), "--run-dir", str(run)]
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSING_TRAIN, str(ready), str(go), *argv],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.02)
        other = tmp_path / "other.yaml"  # another lr: the mix the lock prevents
        other.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "lr": 0.01}}))
        code = main(["train", str(other), "--run-dir", str(run)])
        err = capsys.readouterr().err.splitlines()
        resumed = main([*argv, "--resume"])
        err_resume = capsys.readouterr().err.splitlines()
    finally:
        go.write_text("go")
        assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    assert code == 2
    assert resumed == 2
    assert len(err) == 1
    assert len(err_resume) == 1
    assert f"in use by another oodlab process (pid {first.pid} " in err[0]
    assert f"pid {first.pid} " in err_resume[0]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["lr"] == 0.003
    assert saved["train"]["epochs"] == 3
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["scope"] == "epoch"] == [0, 1, 2]
    from oodlab.train import checkpoint
    from oodlab.train.run import load_model_from_run

    assert checkpoint.load_latest(run)["epoch"] == 3
    load_model_from_run(run)  # its SHA-256 record matches the weights
    assert not (run / LOCK_NAME).exists()  # released at the end


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.run(  # locks the folder, then dies without releasing it
        [
            sys.executable,
            "-c",
            "import os, sys; from oodlab.locks import acquire; acquire(sys.argv[1]); os._exit(0)",
            str(folder),
        ],
        env=_env(),
        check=True,
    )
    assert holder.returncode == 0
    stale = (folder / LOCK_NAME).read_text().split()[0]
    assert stale != str(os.getpid())
    with folder_lock(folder):
        assert (folder / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    assert not (folder / LOCK_NAME).exists()


def test_a_live_holder_in_another_process_is_named(tmp_path):
    folder = tmp_path / "bench"
    code = "import sys, time; from oodlab.locks import acquire; acquire(sys.argv[1]); "
    code += "print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid} ") as info:
            acquire(folder, "bench folder", "--out")
        assert "\n" not in str(info.value)
        assert "--out" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(folder):  # the kernel dropped the dead process's lock
        pass


def test_locks_are_reentrant_in_one_process_and_remove_what_they_created(tmp_path):
    folder = tmp_path / "a" / "b"
    acquire(folder)
    acquire(folder)
    release(folder)
    assert (folder / LOCK_NAME).is_file()
    release(folder)
    assert not folder.exists()  # created by the lock, left empty: removed
    kept = tmp_path / "kept"
    kept.mkdir()
    with folder_lock(kept):
        (kept / "result.txt").write_text("x")
    assert sorted(p.name for p in kept.iterdir()) == ["result.txt"]
