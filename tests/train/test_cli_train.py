"""``oodlab train`` then ``oodlab eval`` on a run folder, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from oodlab.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke" / "synthetic_oe.yaml"


def test_train_then_eval(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(CONFIG),
                "--run-dir",
                str(run),
                "--set",
                "train.epochs=2",
                "--set",
                "train.device=cpu",
            ]
        )
        == 0
    )
    assert "ID accuracy" in capsys.readouterr().out
    cache = tmp_path / "cache"
    code = main(
        [
            "eval",
            str(run),
            "--scores",
            "msp,energy,knn",
            "--quiet",
            "--cache-dir",
            str(cache),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "model read through: features/head" in capsys.readouterr().out
    results = json.loads((run / "eval" / "results.json").read_text())
    assert set(results["scores"]) == {"msp", "energy", "knn"}
    assert set(results["scores"]["msp"]["per_set"]) == {"noise", "blobs"}
    assert (run / "eval" / "figures" / "knn" / "roc.png").is_file()


def test_train_errors_are_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config file")
    assert "\n" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "Did you mean 'epochs'" in capsys.readouterr().err


def test_eval_of_wrong_architecture_checkpoint(tmp_path, capsys):
    import torch

    from oodlab.models import MODELS

    weights = tmp_path / "w.pt"
    torch.save(
        MODELS.create("small_cnn", num_classes=4, in_channels=1, width=0.25).state_dict(), weights
    )
    argv = ["eval", "--checkpoint", str(weights), "--model", "small_cnn", "--benchmark",
            "synthetic", "--normalize", "none"]  # fmt: skip
    code = main(argv)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit model 'small_cnn'" in err
    assert "\n" not in err
