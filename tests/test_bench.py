"""``oodlab bench`` end to end on the generated preset; summary numbers match their sources."""

from __future__ import annotations

import importlib
import json
import re

import numpy as np
import pytest

from oodlab.bench import run_bench


@pytest.mark.slow
def test_bench_synthetic_end_to_end(tmp_path):
    out = tmp_path / "bench"
    messages: list[str] = []
    summary = run_bench(
        "synthetic", out, cache_dir=tmp_path / "cache", quiet=True, log=messages.append
    )
    bench_files = ["summary.md", "summary.csv", "summary.json", "summary.tex"]
    bench_files += [
        f"figures/{f}.png" for f in ("flagged_per_class", "overview", "training_curves")
    ]
    for name in bench_files:
        assert (out / name).is_file(), name
    run_files = ["results.json", "results.md", "results.csv", "scores.npz", "figures/index.json"]
    run_files += ["figures/overview.png", "figures/flagged_per_class.png"]
    run_files += [f"figures/{s}/{f}.png" for s in ("msp", "knn") for f in ("roc", "pr", "hist")]
    for run in ["ce-s0", "ce-s1", "oe-s0", "oe-s1"]:
        for name in run_files:
            assert (out / "runs" / run / "eval" / name).is_file(), (run, name)
        # a zoo evaluation: per-score folders, no loose per-score PNGs
        figures = out / "runs" / run / "eval" / "figures"
        assert sorted(p.name for p in figures.glob("*.png")) == [
            "flagged_per_class.png",
            "overview.png",
        ]
    data = json.loads((out / "summary.json").read_text())
    row = next(r for r in data["rows"] if r["method"] == "oe" and r["score"] == "msp")
    # The summary's mean ± std equal the per-seed results, recomputed here.
    per_seed = [
        json.loads((out / "runs" / f"oe-s{s}" / "eval" / "results.json").read_text())
        for s in (0, 1)
    ]
    aurocs = [r["scores"]["msp"]["means"]["all"]["auroc"] for r in per_seed]
    assert row["all.auroc"]["mean"] == pytest.approx(np.mean(aurocs))
    assert row["all.auroc"]["std"] == pytest.approx(np.std(aurocs))
    # The markdown shows the same numbers.
    md = (out / "summary.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| oe | msp (method's score) |"))
    cell = line.split("|")[3].strip()
    mean, std = (float(v) for v in re.findall(r"[\d.]+", cell))
    assert mean == pytest.approx(100 * row["all.auroc"]["mean"], abs=0.006)
    assert std == pytest.approx(100 * row["all.auroc"]["std"], abs=0.006)
    # summary.tex carries the same numbers (near / far / all AUROC and FPR95, ACC).
    tex = (out / "summary.tex").read_text()
    tex_line = next(x for x in tex.splitlines() if x.startswith("oe & msp & "))
    cells = tex_line.rstrip(" \\").split(" & ")[2:]
    keys = ["near.auroc", "near.fpr95", "far.auroc", "far.fpr95", "all.auroc", "all.fpr95"]
    for key, text in zip([*keys, "id_accuracy"], cells):
        mean, std = (float(v) for v in re.findall(r"\d+\.\d\d", text))
        assert mean == pytest.approx(100 * row[key]["mean"], abs=0.006), key
        assert std == pytest.approx(100 * row[key]["std"], abs=0.006), key
    # The near / far table of summary.md too.
    near_far = next(x for x in md.splitlines() if re.match(r"\| \d+( ≈)? \| oe \| msp \|", x))
    cells = [c.strip() for c in near_far.strip("|").split("|")][3:]
    for key, text in zip(keys, cells):
        assert float(text.split(" ± ")[0]) == pytest.approx(100 * row[key]["mean"], abs=0.006)
    # The per-seed values behind the paired differences are those of the runs.
    assert row["all.auroc"]["values"] == aurocs
    assert row["all.auroc"]["seeds"] == [0, 1]
    ranked = data["ranking"]["all.auroc"]
    assert {r["method"] for r in ranked} == {"ce", "oe"}
    step = ranked[1]["step"]["all.auroc"]
    above = next(
        r for r in data["rows"] if r["method"] == ranked[0]["method"] and r["default_score"]
    )
    below = next(
        r for r in data["rows"] if r["method"] == ranked[1]["method"] and r["default_score"]
    )
    expected = [a - b for a, b in zip(above["all.auroc"]["values"], below["all.auroc"]["values"])]
    assert step["values"] == pytest.approx(expected)
    # Each run's bootstrap interval holds its point estimate.
    for r in per_seed:
        lo, hi = r["scores"]["msp"]["intervals"]["means"]["all"]["auroc"]
        assert lo <= r["scores"]["msp"]["means"]["all"]["auroc"] <= hi
    # A second run reuses every finished run and evaluation.
    messages.clear()
    again = run_bench(
        "synthetic", out, cache_dir=tmp_path / "cache", quiet=True, log=messages.append
    )
    assert messages == []
    assert again["rows"] == summary["rows"]


def test_bench_scores_carry_the_methods_declared_parameters():
    from oodlab.bench.runner import bench_scores
    from oodlab.eval.cli import zoo_scores
    from oodlab.scores._spec import spec_name

    npos = bench_scores("npos", "knn")  # NPOS declares knn:k=300 (its test scripts)
    assert npos[0] == ("knn", {"k": 300})
    names = [spec_name(s) for s in npos]
    assert names == list(dict.fromkeys(["knn", *zoo_scores()]))  # the zoo, knn once
    ce = bench_scores("ce", "msp")  # no declared parameters: the plain zoo
    assert ce == list(dict.fromkeys(["msp", *zoo_scores()]))
    given = bench_scores("npos", "knn:k=7")  # parameters already given are kept
    assert given[0] == ("knn", {"k": 7})
    assert [spec_name(s) for s in given].count("knn") == 1


def test_run_bench_passes_the_declared_parameters_to_evaluate(tmp_path, monkeypatch):
    """The wiring: an NPOS bench run is evaluated with KNN k = 300, as ``oodlab eval`` on the
    run (training, the model and the evaluation itself are stubbed: only the arguments are
    checked)."""
    from types import SimpleNamespace

    import torch

    from oodlab.bench import runner
    from oodlab.bench.presets import PRESETS, BenchMethod, BenchPreset

    base = PRESETS.get("synthetic").factory().base
    preset = BenchPreset("t", base, (BenchMethod("npos", ("method.name=npos",), "knn"),))
    monkeypatch.setattr(runner, "PRESETS", SimpleNamespace(get=lambda _: SimpleNamespace(
        factory=lambda: preset)))  # fmt: skip
    done = SimpleNamespace(seconds=0.0, final_accuracy=0.0)
    module = importlib.import_module  # the packages re-export functions of the same names
    monkeypatch.setattr(module("oodlab.train.loop"), "train", lambda *a, **k: done)
    monkeypatch.setattr(module("oodlab.train.run"), "load_model_from_run",
                        lambda _: torch.nn.Identity())  # fmt: skip
    seen = []

    class StopError(Exception):
        pass

    def evaluate(model, test, ood, scores, **kwargs):
        seen.append(list(scores))
        raise StopError

    monkeypatch.setattr(module("oodlab.eval.evaluate"), "evaluate", evaluate)
    with pytest.raises(StopError):
        run_bench("t", tmp_path / "bench", quiet=True, log=lambda _: None)
    assert seen[0] == runner.bench_scores("npos", "knn")
    assert seen[0][0] == ("knn", {"k": 300})
