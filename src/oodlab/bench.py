"""``oodlab bench PRESET``: train several methods on one benchmark, evaluate each with its own
score and the post-hoc zoo, repeat over seeds, and write one comparison table.

Every run lives in ``OUT/runs/<method>-s<seed>``: a finished run (``model.pt``) is reused, an
interrupted one resumes from its checkpoint, and a finished evaluation (``eval/results.json``)
is read back, so an interrupted bench continues where it stopped and never recomputes.
The summary (``summary.md``, ``summary.csv``, ``summary.json``) gives, per method and score,
the mean ± std over seeds of the per-set means (population std, as OpenOOD), both FPR95
conventions labelled, ID accuracy and many / medium / few-shot accuracy.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from oodlab.bench_presets import PRESETS, BenchMethod, BenchPreset
from oodlab.bench_trends import check_trends, trends_markdown
from oodlab.config import RunConfig, apply_overrides, from_dict, load_yaml, to_dict
from oodlab.errors import ConfigError
from oodlab.eval.report import markdown_table, percent, save_flagged_per_class
from oodlab.io import atomic_write_json, atomic_write_text

__all__ = ["PRESETS", "BenchMethod", "BenchPreset", "run_bench", "run_config", "summarise"]


def run_config(
    preset: BenchPreset, method: BenchMethod, seed: int, data_root: Path | None = None
) -> RunConfig:
    overrides = [*method.overrides, f"train.seed={seed}", f"data.seed={seed}"]
    if data_root is not None:
        overrides.append(f"data.data_root={data_root}")
    base = preset.base if method.config_file is None else load_yaml(method.config_file)
    return from_dict(RunConfig, apply_overrides(base, overrides))


def run_bench(
    preset_name: str,
    out_dir: str | Path,
    seeds: tuple[int, ...] | None = None,
    cache_dir: Path | None = Path(".oodlab_cache"),
    quiet: bool = False,
    log: Any = print,
    data_root: Path | None = None,
) -> dict[str, Any]:
    """Train and evaluate every method of the preset; returns the summary (also written)."""
    from oodlab.data import build_benchmark
    from oodlab.eval.cli import zoo_scores
    from oodlab.eval.evaluate import evaluate
    from oodlab.eval.extract import ExtractConfig
    from oodlab.train.loop import train
    from oodlab.train.run import load_model_from_run

    preset = PRESETS.get(preset_name).factory()
    out = Path(out_dir)
    seeds = seeds or preset.seeds
    results: dict[str, dict[int, dict[str, Any]]] = {}
    flagged: dict[str, np.ndarray] = {}
    for method in preset.methods:
        for seed in seeds:
            config = run_config(preset, method, seed, data_root)
            run_dir = out / "runs" / f"{method.label}-s{seed}"
            eval_file = run_dir / "eval" / "results.json"
            if not (run_dir / "model.pt").is_file():
                resume = (run_dir / "checkpoint.pt").exists() or (
                    run_dir / "checkpoint.prev.pt"
                ).exists()
                log(f"[{method.label} seed {seed}] {'resuming' if resume else 'training'} ...")
                done = train(config, run_dir, resume=resume)
                seconds, accuracy = done.seconds, 100 * done.final_accuracy
                tag = f"[{method.label} seed {seed}]"
                log(f"{tag} trained in {seconds:.0f} s, ID accuracy {accuracy:.2f}%")
            if not eval_file.is_file():
                log(f"[{method.label} seed {seed}] evaluating ...")
                data = config.data
                benchmark = build_benchmark(
                    data.benchmark, data.data_root, seed=data.seed, **data.options
                )
                scores = list(dict.fromkeys([method.default_score, *zoo_scores()]))
                evaluate(
                    load_model_from_run(run_dir),
                    benchmark.test,
                    benchmark.ood,
                    scores,
                    train=benchmark.train,
                    aux=benchmark.aux,
                    near=benchmark.near,
                    far=benchmark.far,
                    class_counts=benchmark.class_counts,
                    fake_ood=benchmark.fake_ood,
                    extract_config=ExtractConfig(
                        batch_size=preset.eval_batch_size,
                        device=config.train.device,
                        cache_dir=cache_dir,
                        quiet=quiet,
                    ),
                    skip_unavailable=True,
                    out_dir=run_dir / "eval",
                )
            results.setdefault(method.label, {})[seed] = json.loads(eval_file.read_text())
            evaluated = results[method.label][seed]
            why = evaluated.get("skipped", {}).get(method.default_score)
            if why is not None:
                raise ConfigError(
                    f"{method.label}: its score {method.default_score!r} could not be computed "
                    f"({why}); fix that, then delete {eval_file.parent} to evaluate again"
                )
            if seed == seeds[0]:
                flagged[method.label] = np.asarray(
                    evaluated["per_class_flagged"][method.default_score], dtype=float
                )
    summary = summarise(preset, results)
    write_summary(summary, out)
    if flagged:
        save_flagged_per_class(flagged, out / "figures" / "flagged_per_class.png")
    return summary


METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_id")


def _mean_std(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(np.mean(array)), "std": float(np.std(array)), "n": int(array.size)}


def summarise(preset: BenchPreset, results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Mean ± std over seeds of every (method, score, group, metric) and of the accuracies."""
    rows = []
    for method in preset.methods:
        per_seed = results.get(method.label, {})
        if not per_seed:
            continue
        first = next(iter(per_seed.values()))
        for score in first["scores"]:
            row: dict[str, Any] = {
                "method": method.label,
                "score": score,
                "default_score": score == method.default_score,
            }
            for group in first["scores"][score]["means"]:
                for metric in METRICS:
                    values = [r["scores"][score]["means"][group][metric] for r in per_seed.values()]
                    row[f"{group}.{metric}"] = _mean_std(values)
            # A score that classifies with its own logits (PATT) carries its own accuracy.
            acc = [r["scores"][score].get("accuracy") or r for r in per_seed.values()]
            row["id_accuracy"] = _mean_std([a["id_accuracy"] for a in acc])
            for shot in ("many_acc", "medium_acc", "few_acc"):
                values = [(a.get("shot_accuracy") or {}).get(shot, float("nan")) for a in acc]
                row[shot] = _mean_std(values)
            rows.append(row)
    return {
        "preset": preset.name,
        "description": preset.description,
        "base_config": to_dict(preset.base),
        "methods": {
            m.label: {"overrides": list(m.overrides), "default_score": m.default_score}
            for m in preset.methods
        },
        "seeds": sorted({s for r in results.values() for s in r}),
        "highlight": list(preset.highlight),
        "rows": rows,
        "trends": check_trends(rows),
    }


def _cell(stat: dict[str, float]) -> str:
    if stat["n"] > 1:
        return f"{percent(stat['mean'])} ± {100 * stat['std']:.2f}"
    return percent(stat["mean"])


HEADER = [
    "method",
    "score",
    "AUROC ↑",
    "AUPR-in ↑",
    "AUPR-out ↑",
    "FPR95 (ID flagged @95% OOD) ↓",
    "FPR95 (OOD kept @95% ID) ↓",
    "ID acc ↑",
    "many ↑",
    "medium ↑",
    "few ↑",
]


def table_rows(summary: dict[str, Any], only_highlight: bool = False) -> list[list[str]]:
    keep = set(summary["highlight"])
    body = []
    for row in summary["rows"]:
        if only_highlight and not (row["default_score"] or row["score"] in keep):
            continue
        name = row["score"] + (" (method's score)" if row["default_score"] else "")
        body.append(
            [
                row["method"],
                name,
                *(_cell(row[f"all.{m}"]) for m in METRICS),
                *(_cell(row[k]) for k in ("id_accuracy", "many_acc", "medium_acc", "few_acc")),
            ]
        )
    return body


def summary_markdown(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    lines = [
        f"# oodlab bench `{summary['preset']}`",
        "",
        f"{summary['description']}. Seeds: {seeds} (mean ± population std). All values in percent; "
        "OOD metrics are the unweighted mean over the OOD sets; OOD is the positive class.",
        "",
        "## Main scores",
        "",
        markdown_table(HEADER, table_rows(summary, only_highlight=True)),
        "",
        *trends_markdown(summary.get("trends", [])),
        "## Every score",
        "",
        markdown_table(HEADER, table_rows(summary)),
    ]
    return "\n".join(lines) + "\n"


def write_summary(summary: dict[str, Any], out: Path) -> None:
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = (
        [k for k in summary["rows"][0] if k not in ("method", "score", "default_score")]
        if summary["rows"]
        else []
    )
    writer.writerow(
        ["method", "score", "default_score", *(f"{k}.{s}" for k in keys for s in ("mean", "std"))]
    )
    for row in summary["rows"]:
        writer.writerow(
            [
                row["method"],
                row["score"],
                row["default_score"],
                *(row[k][s] for k in keys for s in ("mean", "std")),
            ]
        )
    atomic_write_text(out / "summary.csv", buffer.getvalue())
