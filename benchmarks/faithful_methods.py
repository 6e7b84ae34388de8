"""Measure the choices of issue 17 on finished offline runs: PATT's calibration weighting
(``balance: prior`` vs ``official``) and the ImOOD ``ada_energy`` prior correction (the
residual ``τ`` chosen from the run vs a forced ``τ = 1``).

    python benchmarks/faithful_methods.py RUN_DIR [RUN_DIR ...] --out FILE.json

Each run is evaluated on its own benchmark (the run's config) from one cached extraction;
the JSON holds, per run and score, the all-set means of AUROC / FPR95 / AUPR-out, the
calibrated accuracy (PATT) and the fraction of attention weights below 0.2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from oodlab.data import build_benchmark
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig
from oodlab.io import atomic_write_json
from oodlab.train.run import load_model_from_run, load_run_config

SCORES = ["energy", "patt_energy", "patt_energy_official", "ada_energy"]


def measure(run_dir: Path, cache: Path) -> list[dict[str, Any]]:
    config = load_run_config(run_dir)
    data = config.data
    benchmark = build_benchmark(data.benchmark, data.data_root, seed=data.seed, **data.options)
    model = load_model_from_run(run_dir)
    kwargs: dict[str, Any] = {
        "train": benchmark.train, "aux": benchmark.aux, "near": benchmark.near,
        "far": benchmark.far, "class_counts": benchmark.class_counts,
        "fake_ood": benchmark.fake_ood,
        "extract_config": ExtractConfig(batch_size=512, cache_dir=cache, quiet=True),
    }  # fmt: skip
    rows = []
    runs = [("", SCORES), (" (tau_la forced to 1)", [("ada_energy", {"tau_la": 1.0})])]
    for suffix, scores in runs:
        result = evaluate(model, benchmark.test, benchmark.ood, scores, **kwargs)
        for name, score in result.scores.items():
            means = score.means["all"]
            row = {
                "run": run_dir.name, "score": name + suffix,
                "auroc": means["auroc"], "fpr95": means["fpr95"], "aupr_out": means["aupr_out"],
                "id_accuracy": (score.accuracy or {}).get("id_accuracy", result.id_accuracy),
                "note": score.note,
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path(".oodlab_cache"))
    args = parser.parse_args()
    rows = [row for run in args.runs for row in measure(run, args.cache_dir)]
    atomic_write_json(args.out, {"rows": rows})


if __name__ == "__main__":
    main()
