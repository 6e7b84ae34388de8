"""The command line: listing, and one-line errors (no traceback) on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oodlab.cli import main


def test_list_scores_prints_every_registered_score(capsys):
    from oodlab.scores import SCORES

    assert main(["list", "scores"]) == 0
    header, *out = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "FIT", "NEEDS", "PAPER"]
    assert [line.split()[0] for line in out] == SCORES.names()
    assert any("arXiv:1610.02136" in line for line in out)  # MSP's paper


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "/no/such/run"], "does not exist"),
        (["eval"], "give a run folder"),
        (["eval", "--checkpoint", "/no/such.pt", "--model", "x"], "--benchmark"),
    ],
)
def test_eval_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert message in err
    assert "\n" not in err


def test_unknown_score_names_the_nearest_match(tmp_path, capsys):
    from oodlab.eval.cli import parse_score_list
    from oodlab.scores import SCORES

    names = parse_score_list("msp, enrgy")
    with pytest.raises(Exception, match="Did you mean 'energy'") as info:
        SCORES.get(names[1])
    assert "\n" not in str(info.value)


def test_console_script_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "oodlab.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "higher = more OOD" in result.stdout


def test_unknown_score_and_missing_dataset_through_the_cli(tmp_path, capsys, monkeypatch):
    import torch

    from oodlab.models import MODELS

    weights = tmp_path / "w.pt"
    torch.save(
        MODELS.create("small_cnn", num_classes=4, in_channels=1, width=0.25).state_dict(), weights
    )
    base = [
        "eval",
        "--checkpoint",
        str(weights),
        "--model",
        "small_cnn",
        "--model-set",
        "width=0.25",
        "--normalize",
        "none",
    ]
    code = main(
        [*base, "--benchmark", "synthetic", "--scores", "msp,enrgy", "--cache-dir", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown score 'enrgy'" in err
    assert "\n" not in err
    monkeypatch.setattr("oodlab.data.datasets.idx.DEBIAN_DIR", tmp_path / "nowhere")
    code = main([*base, "--benchmark", "fmnist_lt", "--data-root", str(tmp_path / "missing")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "Fashion-MNIST not found" in err
    assert "\n" not in err


def test_eval_tune_uses_the_benchmark_ood_val_or_fails_in_one_line(tmp_path, capsys, monkeypatch):
    import dataclasses
    import json

    import torch

    import oodlab.data
    from oodlab.data import build_benchmark
    from oodlab.models import MODELS

    weights = tmp_path / "w.pt"
    torch.save(
        MODELS.create("small_cnn", num_classes=4, in_channels=1, width=0.25).state_dict(), weights
    )
    synthetic = build_benchmark("synthetic")
    no_aux = dataclasses.replace(synthetic, aux=None, info={"ood_val": "not found (val_x.txt)"})
    monkeypatch.setattr(oodlab.data, "build_benchmark", lambda *a, **k: no_aux)
    argv = ["eval", "--checkpoint", str(weights), "--model", "small_cnn", "--model-set",
            "width=0.25", "--normalize", "none", "--benchmark", "synthetic", "--scores",
            "react", "--tune",
            "--device", "cpu", "--quiet", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "eval")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--tune needs an OOD validation set" in err
    assert "not found (val_x.txt)" in err
    assert "\n" not in err

    with_val = dataclasses.replace(synthetic, aux=None, ood_val=synthetic.aux)
    monkeypatch.setattr(oodlab.data, "build_benchmark", lambda *a, **k: with_val)
    assert main(argv) == 0
    data = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert "(tune.ood_val synthetic-aux-0, 128 images)" in data["meta"]["tuning_rule"]
    tuning = data["scores"]["react"]["tuning"]
    assert len(tuning["trials"]) > 1
    assert tuning["selected"] == data["scores"]["react"]["params"]


def test_scores_zoo_lists_what_it_leaves_out_and_zoo_plus_names_adds_them():
    from oodlab.eval.cli import resolve_scores, zoo_scores
    from oodlab.scores import SCORES

    gradient = {e.name for e in SCORES if "input_grad" in e.needs}
    assert gradient == {"odin", "iodin", "mahalanobis_ensemble"}
    scores, omitted = resolve_scores("zoo", ["msp"])
    assert scores == zoo_scores()
    assert set(omitted) == gradient
    assert not gradient & set(scores)
    assert "input gradients" in omitted["odin"]
    assert "--scores zoo,odin" in omitted["odin"]
    scores, omitted = resolve_scores("zoo,odin", ["msp"])
    assert scores == [*zoo_scores(), "odin"]
    assert set(omitted) == {"iodin", "mahalanobis_ensemble"}
    assert resolve_scores("msp,odin", ["x"]) == (["msp", "odin"], {})
    assert resolve_scores("default", ["bin_disc", "msp"]) == (["bin_disc", "msp"], {})
