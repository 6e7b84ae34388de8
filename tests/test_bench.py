"""``oodlab bench`` end to end on the generated preset; summary numbers match their sources."""

from __future__ import annotations

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
    for name in ["summary.md", "summary.csv", "summary.json", "figures/flagged_per_class.png"]:
        assert (out / name).is_file(), name
    for run in ["ce-s0", "ce-s1", "oe-s0", "oe-s1"]:
        assert (out / "runs" / run / "eval" / "figures" / "hist_msp.png").is_file()
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
    # A second run reuses every finished run and evaluation.
    messages.clear()
    again = run_bench(
        "synthetic", out, cache_dir=tmp_path / "cache", quiet=True, log=messages.append
    )
    assert messages == []
    assert again["rows"] == summary["rows"]
