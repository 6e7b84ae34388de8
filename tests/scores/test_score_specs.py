"""``--scores`` with hyper-parameters, and a method declaring its own score's parameters."""

from __future__ import annotations

import pytest

from oodlab.errors import ConfigError
from oodlab.eval.checkpoint import with_method_params
from oodlab.scores._spec import parse_score_specs


def test_parse_names_and_parameters():
    assert parse_score_specs("msp, energy") == ["msp", "energy"]
    assert parse_score_specs("knn:k=300,react:percentile=95") == [
        ("knn", {"k": 300}),
        ("react", {"percentile": 95}),
    ]
    assert parse_score_specs("odin:temperature=1000,epsilon=0.0014,msp") == [
        ("odin", {"temperature": 1000, "epsilon": 0.0014}),
        "msp",
    ]
    assert parse_score_specs("scale:space=features:percentile=85.5") == [
        ("scale", {"space": "features", "percentile": 85.5})
    ]
    assert parse_score_specs("odin:input_std=[0.5, 0.5]") == [("odin", {"input_std": [0.5, 0.5]})]


@pytest.mark.parametrize("bad", ["", "k=3,msp", "knn:k", ":k=3", "knn:=3"])
def test_bad_specs_fail_in_one_line(bad):
    with pytest.raises(ConfigError) as info:
        parse_score_specs(bad)
    assert "\n" not in str(info.value)


def test_npos_declares_knn_k_300_and_others_declare_nothing():
    import oodlab.train.methods  # noqa: F401  (registers the methods)

    assert with_method_params("npos", ["knn", "msp"]) == ["knn:k=300", "msp"]
    assert with_method_params("npos", ["knn:k=5"]) == ["knn:k=5"]
    assert with_method_params("ce", ["msp", "knn"]) == ["msp", "knn"]


def test_eval_cli_passes_parameters_to_the_score(tmp_path):
    import json

    import torch

    from oodlab.cli import main
    from oodlab.models import MODELS

    weights = tmp_path / "w.pt"
    torch.save(MODELS.create("small_cnn", num_classes=4, in_channels=1, width=0.25).state_dict(),
               weights)  # fmt: skip
    argv = ["eval", "--checkpoint", str(weights), "--model", "small_cnn", "--model-set",
            "width=0.25", "--normalize", "none", "--benchmark", "synthetic", "--scores",
            "knn:k=7,react:percentile=95", "--device", "cpu", "--quiet", "--cache-dir",
            str(tmp_path / "c"), "--out", str(tmp_path / "e")]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "e" / "results.json").read_text())
    assert data["scores"]["knn"]["params"]["k"] == 7
    assert data["scores"]["react"]["params"]["percentile"] == 95
