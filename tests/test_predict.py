"""``oodlab predict``: a CSV of class, score and OOD flag for image files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodlab.cli import main
from oodlab.predict_cli import read_image

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "smoke" / "synthetic_oe.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("predict") / "run"
    argv = ["train", str(CONFIG), "--run-dir", str(run), "--set", "train.epochs=1"]
    assert main([*argv, "--set", "train.device=cpu"]) == 0
    return run


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_on_a_run_then_on_its_saved_detector(run, tmp_path, capsys):
    from oodlab.train.run import load_model_from_run

    files = _images(tmp_path / "images", 5)
    assert main(["predict", str(run), str(tmp_path / "images"), "--score", "energy"]) == 0
    captured = capsys.readouterr()
    rows = _rows(captured.out)
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert "saved" in captured.err
    # the scores are the energy of the model's logits on the resized [0, 1] images
    model = load_model_from_run(run)
    x = torch.stack([read_image(f, (1, 16, 16)) for f in files])
    with torch.no_grad():
        logits = model(x)
    expected = -torch.logsumexp(logits, 1)
    got = torch.tensor([float(r["score"]) for r in rows])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert [int(r["class"]) for r in rows] == logits.argmax(1).tolist()
    # the saved detector file alone (its run is recorded in it) gives the same CSV
    detector_file = run / "detector_energy.safetensors"
    out = tmp_path / "out.csv"
    assert main(["predict", str(detector_file), *map(str, files), "--out", str(out)]) == 0
    assert _rows(out.read_text()) == rows
    assert "5 images" in capsys.readouterr().out


def test_predict_errors_are_one_line(run, tmp_path, capsys):
    assert main(["predict", str(run), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(run), str(tmp_path / "empty")]) == 2
    assert "no image files" in capsys.readouterr().err
