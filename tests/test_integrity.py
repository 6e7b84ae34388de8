"""model.pt is checked against its SHA-256 record; legacy runs without one still load (one
warning line); the demo says before it installs anything and can be told not to; --debug
shows the traceback the one-line error hides."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from oodlab.cli import main
from oodlab.config import RunConfig, from_dict
from oodlab.errors import CheckpointError, DatasetNotFoundError
from oodlab.train.loop import train
from oodlab.train.run import load_model_from_run

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 32, "options": {"n_max": 16}},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 1, "quiet": True, "device": "cpu"},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("integrity") / "run"
    train(from_dict(RunConfig, BASE), run)
    return run


def test_model_pt_is_checked_against_its_record(finished, tmp_path):
    import hashlib

    record = json.loads((finished / "model.json").read_text())["model_sha256"]
    assert record == hashlib.sha256((finished / "model.pt").read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model_from_run(finished)  # a good file loads without a word
    run = shutil.copytree(finished, tmp_path / "run")
    data = bytearray((run / "model.pt").read_bytes())
    data[-100] ^= 0x01  # one bit, deep inside the zip's tensor bytes
    (run / "model.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 does not match") as info:
        load_model_from_run(run)
    assert "\n" not in str(info.value)


def test_a_run_without_a_record_loads_with_one_warning(finished, tmp_path):
    run = shutil.copytree(finished, tmp_path / "legacy")
    spec = json.loads((run / "model.json").read_text())
    del spec["model_sha256"]  # as the runs written before the record existed
    (run / "model.json").write_text(json.dumps(spec))
    with pytest.warns(UserWarning, match="no SHA-256 record") as record:
        load_model_from_run(run)
    assert len(record) == 1


def test_a_warning_is_one_line_on_the_command_line(finished, tmp_path, capsys):
    run = shutil.copytree(finished, tmp_path / "legacy")
    spec = json.loads((run / "model.json").read_text())
    del spec["model_sha256"]
    (run / "model.json").write_text(json.dumps(spec))
    code = main(["eval", str(run), "--scores", "msp", "--quiet", "--cache-dir", str(tmp_path)])
    assert code == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"warning: {run / 'model.pt'} has no SHA-256 record in model.json (a run "
                   "written by an older oodlab); loaded without an integrity check"]  # fmt: skip


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    argv = ["eval", str(tmp_path / "none")]
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("error: run folder")
    monkeypatch.setenv("OODLAB_DEBUG", "1")
    assert main(argv) == 2
    assert "Traceback" in capsys.readouterr().err


def test_demo_as_root_says_it_installs_first_and_can_be_told_not_to(monkeypatch, capsys):
    import oodlab.bench.cli as bench_cli
    import oodlab.data.datasets.idx as idx

    def missing(root):
        raise DatasetNotFoundError("Fashion-MNIST not found")

    monkeypatch.setattr(idx, "find_fashion_mnist", missing)
    monkeypatch.setattr(bench_cli, "_is_root", lambda: True)
    monkeypatch.setattr(bench_cli.shutil, "which", lambda name: "/usr/bin/apt-get")
    ran = []

    def fake_run(cmd, check):
        ran.append((cmd, capsys.readouterr().out))  # what was printed before it ran
        raise RuntimeError("stop here")

    monkeypatch.setattr(bench_cli.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="stop here"):
        bench_cli.ensure_fashion_mnist(None)
    assert ran[0][0][-1] == "dataset-fashion-mnist"
    assert "installing the Debian package" in ran[0][1]
    assert "--no-install" in ran[0][1]
    ran.clear()
    with pytest.raises(DatasetNotFoundError):
        bench_cli.ensure_fashion_mnist(None, install=False)
    monkeypatch.setenv("OODLAB_NO_INSTALL", "1")
    with pytest.raises(DatasetNotFoundError):
        bench_cli.ensure_fashion_mnist(None)
    assert ran == []
