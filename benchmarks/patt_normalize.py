"""Measure PATT's ProCo ``normalize`` option (issue 17): the same PATT recipe trained with
L2-normalised contrastive features (oodlab's default) and with the official code's raw
features (``method.options.normalize=false``), seed for seed, each run scored by
:func:`faithful_methods.measure` (``energy``, ``patt_energy`` and the rest, all-set means).

    python benchmarks/patt_normalize.py --normalized RUN_s0 RUN_s1 RUN_s2 \\
        --raw RAW_s0 RAW_s1 RAW_s2 --out benchmarks/results/patt_normalize.json

Runs are paired by their ``train.seed``. The JSON holds every per-run row and, per score and
metric, both means ± std over seeds and the paired difference (normalised − raw) with the
bench's noise rule (:func:`oodlab.bench.stats.paired_difference`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from faithful_methods import measure

from oodlab.bench.stats import mean_std, paired_difference
from oodlab.io import atomic_write_json
from oodlab.train.run import load_run_config

METRICS = ("auroc", "fpr95", "aupr_out", "id_accuracy")


def rows_by_seed(runs: list[Path], cache: Path) -> dict[int, list[dict[str, Any]]]:
    return {load_run_config(run).train.seed: measure(run, cache) for run in runs}


def compare(
    normalized: dict[int, list[dict[str, Any]]], raw: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    def stat(rows: dict[int, list[dict[str, Any]]], score: str, metric: str) -> dict[str, Any]:
        seeds = sorted(rows)
        values = [next(r[metric] for r in rows[s] if r["score"] == score) for s in seeds]
        return mean_std([100 * v for v in values], seeds)

    scores = [r["score"] for r in next(iter(normalized.values()))]
    out: dict[str, Any] = {}
    for score in scores:
        for metric in METRICS:
            a, b = stat(normalized, score, metric), stat(raw, score, metric)
            key = f"all.{metric}" if metric != "id_accuracy" else "id_acc"
            out[f"{score}/{metric}"] = {
                "normalized": a,
                "raw": b,
                "normalized_minus_raw": paired_difference(a, b, key),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--normalized", nargs="+", type=Path, required=True)
    parser.add_argument("--raw", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path(".oodlab_cache"))
    args = parser.parse_args()
    normalized = rows_by_seed(args.normalized, args.cache_dir)
    raw = rows_by_seed(args.raw, args.cache_dir)
    if sorted(normalized) != sorted(raw):
        raise SystemExit(f"seeds differ: normalized {sorted(normalized)}, raw {sorted(raw)}")
    comparison = compare(normalized, raw)
    atomic_write_json(
        args.out,
        {
            "what": "PATT ProCo normalize=true (oodlab default) vs false (official code)",
            "runs": {"normalized": [str(p) for p in args.normalized],
                     "raw": [str(p) for p in args.raw]},
            "values": "percent; mean and population std over seeds; paired difference "
                      "normalized - raw with its sample std",
            "comparison": comparison,
            "rows": {"normalized": normalized, "raw": raw},
        },
    )  # fmt: skip
    shown = ("patt_energy/auroc", "patt_energy/fpr95", "energy/auroc", "patt_energy/id_accuracy")
    for key in shown:
        c, d = comparison[key], comparison[key]["normalized_minus_raw"]
        means = [round(c[side]["mean"], 2) for side in ("normalized", "raw")]
        print(json.dumps({key: [*means, round(d["mean"], 2), round(d["std"], 2), d["verdict"]]}))


if __name__ == "__main__":
    main()
