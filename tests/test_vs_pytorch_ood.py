"""Parity with pytorch-ood on a tiny trained model (skipped without the ``bench`` extra)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytorch_ood")

import torch

from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.data import build_benchmark
from oodlab.train.loop import train
from oodlab.train.run import load_model_from_run

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_pytorch_ood.py"
CONFIG = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 4, "lr": 0.003, "quiet": True, "device": "cpu", "seed": 0},
    "method": {"name": "ce"},
}


def _load_script():
    spec = importlib.util.spec_from_file_location("vs_pytorch_ood", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vs_pytorch_ood"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    train(from_dict(RunConfig, apply_overrides(CONFIG, [])), run)
    model = load_model_from_run(run, device="cpu")
    bench = build_benchmark("synthetic", seed=0, n_max=96, imbalance_ratio=0.75)
    script = _load_script()
    return script, script.compare(model, bench.train, bench.test, bench.ood, bench.num_classes)


def test_every_detector_matches_pytorch_ood(comparison):
    script, result = comparison
    assert set(result["parity"]) == set(script.CONVENTIONS)
    for name, row in result["parity"].items():
        assert row["scores_agree"], (name, row)
        if row["float64_recheck_gap_rel"] is None:
            assert row["max_score_gap_rel_to_scale"] <= script.TOLERANCE, (name, row)
        else:  # float32 / ridge gaps only: small, and gone in the float64 like-with-like check
            assert row["max_score_gap_rel_to_scale"] <= 1e-1, (name, row)
            assert row["float64_recheck_gap_rel"] <= script.TOLERANCE, (name, row)
        assert row["metrics_agree"], (name, row)
        assert row["metric_gap_same_scores"] <= 1e-9, (name, row)
        if row["float64_recheck_gap_rel"] is None:
            assert row["metric_gap_each_own_scores"] <= 1e-4, (name, row)


def test_convention_maps_are_not_identity_where_documented(comparison):
    # Independent check of the documented scale factors: 2N for Mahalanobis, C for GradNorm.
    script, _ = comparison
    s = torch.tensor([0.5, 2.0])
    maps = script.CONVENTIONS
    assert torch.equal(maps["mahalanobis"][1](s, 10, 4), torch.tensor([10.0, 40.0]))
    assert torch.equal(maps["gradnorm"][1](s, 10, 4), torch.tensor([2.0, 8.0]))
    assert torch.equal(maps["knn"][1](s, 10, 4), torch.tensor([0.25, 4.0]))
    assert torch.equal(maps["msp"][1](s, 10, 4), s)


def test_speed_is_recorded(comparison):
    _, result = comparison
    seconds = result["seconds"]
    assert min(seconds.values()) > 0
    assert result["speedup_warm"] == pytest.approx(seconds["pytorch_ood"] / seconds["oodlab_warm"])
    assert result["speedup_cold"] == pytest.approx(seconds["pytorch_ood"] / seconds["oodlab_cold"])
