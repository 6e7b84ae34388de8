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

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oodlab.bench.figures import write_bench_figures
from oodlab.bench.presets import PRESETS, BenchMethod, BenchPreset
from oodlab.bench.report import HEADER, METRICS, SET_METRICS, table_rows, write_summary
from oodlab.bench.stats import NOISE_RULE, mean_std, ranking
from oodlab.bench.trends import check_trends
from oodlab.config import RunConfig, apply_overrides, from_dict, load_yaml, to_dict
from oodlab.errors import ConfigError
from oodlab.io import read_json
from oodlab.locks import locks_folder

if TYPE_CHECKING:
    from oodlab.scores._spec import ScoreSpec

__all__ = [
    "HEADER",
    "PRESETS",
    "BenchMethod",
    "BenchPreset",
    "bench_scores",
    "run_bench",
    "run_config",
    "summarise",
    "table_rows",
    "write_summary",
]


def run_config(
    preset: BenchPreset, method: BenchMethod, seed: int, data_root: Path | None = None
) -> RunConfig:
    overrides = [*method.overrides, f"train.seed={seed}", f"data.seed={seed}"]
    if data_root is not None:
        overrides.append(f"data.data_root={data_root}")
    base = preset.base if method.config_file is None else load_yaml(method.config_file)
    return from_dict(RunConfig, apply_overrides(base, overrides))


def bench_scores(method_name: str, default_score: str) -> list[ScoreSpec]:
    """The scores a bench run is evaluated with: the method's own score, then the post-hoc
    zoo, each with the hyper-parameters the method declares for it (registry ``score_params``;
    NPOS: ``knn`` → ``knn:k=300``), as ``oodlab eval RUN_DIR`` applies them. One spec per
    score name (results are keyed by name): the first wins, so the method's own score keeps
    parameters it was given."""
    from oodlab.eval.checkpoint import with_method_params
    from oodlab.eval.cli import zoo_scores
    from oodlab.scores._spec import parse_score_specs, spec_name

    named = with_method_params(method_name, [default_score, *zoo_scores()])
    specs: dict[str, ScoreSpec] = {}
    for spec in parse_score_specs(",".join(named)):
        specs.setdefault(spec_name(spec), spec)
    return list(specs.values())


@locks_folder("out_dir", "bench folder", "--out")
def run_bench(
    preset_name: str,
    out_dir: str | Path,
    seeds: tuple[int, ...] | None = None,
    cache_dir: Path | None = Path(".oodlab_cache"),
    quiet: bool = False,
    log: Any = print,
    data_root: Path | None = None,
    layout: str = "near_far",
    train_missing: bool = True,
) -> dict[str, Any]:
    """Train and evaluate every method of the preset; returns the summary (also written, with
    ``summary.tex`` in the column ``layout`` of :data:`oodlab.bench.latex.LAYOUTS`).

    ``train_missing=False`` evaluates and summarises only the runs that finished training
    (``model.pt``), e.g. while another process is still training the rest; the summary lists
    the runs left out (``missing_runs``)."""
    from oodlab.data import build_benchmark
    from oodlab.data.class_names import class_names
    from oodlab.eval.cli import zoo_omitted
    from oodlab.eval.evaluate import evaluate
    from oodlab.eval.extract import ExtractConfig
    from oodlab.eval.report import write_report
    from oodlab.train.loop import train
    from oodlab.train.run import load_model_from_run

    preset = PRESETS.get(preset_name).factory()
    out = Path(out_dir)
    seeds = seeds or preset.seeds
    results: dict[str, dict[int, dict[str, Any]]] = {}
    missing: list[str] = []
    for method in preset.methods:
        for seed in seeds:
            config = run_config(preset, method, seed, data_root)
            run_dir = out / "runs" / f"{method.label}-s{seed}"
            eval_file = run_dir / "eval" / "results.json"
            if not (run_dir / "model.pt").is_file() and not train_missing:
                missing.append(run_dir.name)
                log(f"[{method.label} seed {seed}] not trained yet: left out of the summary")
                continue
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
                scores = bench_scores(config.method.name, method.default_score)
                result = evaluate(
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
                    class_names=class_names(benchmark, data.data_root) or None,
                    extract_config=ExtractConfig(
                        batch_size=preset.eval_batch_size,
                        num_workers=config.data.num_workers,
                        device=config.train.device,
                        cache_dir=cache_dir,
                        quiet=quiet,
                    ),
                    skip_unavailable=True,
                    omitted=zoo_omitted(),
                )
                # per-score figure folders for the method's own score and the highlighted ones
                shown = [method.default_score, *preset.highlight]
                write_report(result, run_dir / "eval", figure_scores=shown)
            results.setdefault(method.label, {})[seed] = read_json(eval_file, "evaluation")
            evaluated = results[method.label][seed]
            why = evaluated.get("skipped", {}).get(method.default_score)
            if why is not None:
                raise ConfigError(
                    f"{method.label}: its score {method.default_score!r} could not be computed "
                    f"({why}); fix that, then delete {eval_file.parent} to evaluate again"
                )
    summary = summarise(preset, results)
    if missing:
        summary["missing_runs"] = missing
    write_summary(summary, out, layout)
    write_bench_figures(summary, out)
    return summary


def _interval(run: dict[str, Any], score: str, where: str, name: str, metric: str) -> Any:
    """The run's bootstrap interval of (score, group or set, metric), or None."""
    return (run["scores"][score].get("intervals") or {}).get(where, {}).get(name, {}).get(metric)


def _stat(per_seed: dict[int, dict[str, Any]], value: Any, interval: Any = None) -> dict[str, Any]:
    seeds = sorted(per_seed)
    intervals = [interval(per_seed[s]) for s in seeds] if interval is not None else None
    return mean_std(
        [value(per_seed[s]) for s in seeds],
        seeds,
        intervals if intervals and all(i is not None for i in intervals) else None,
    )


def summarise(preset: BenchPreset, results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Mean ± std over seeds of every (method, score, group, metric), of every OOD set's AUROC,
    AUPR-out and FPR95, and of the accuracies; each with its per-seed values (paired
    comparisons) and the mean per-run bootstrap interval; the ranking of the methods' own
    scores with its paired steps; per-class flagged rates with class names."""
    rows = []
    sets: dict[str, list[str]] = {}
    classes: list[dict[str, Any]] = []
    per_class: dict[str, dict[str, Any]] = {}
    for method in preset.methods:
        per_seed = results.get(method.label, {})
        if not per_seed:
            continue
        first = per_seed[min(per_seed)]
        sets = sets or {"near": first["near"], "far": first["far"], "all": []}
        classes = classes or first.get("classes", [])
        for score in first["scores"]:
            if any(score not in r["scores"] for r in per_seed.values()):
                continue
            row: dict[str, Any] = {
                "method": method.label,
                "score": score,
                "default_score": score == method.default_score,
            }
            for group, means in first["scores"][score]["means"].items():
                # fpr95_closest too (the PASCL / ImOOD / PATT rule; the papers' rows compare it)
                for metric in (*METRICS, *(["fpr95_closest"] if "fpr95_closest" in means else [])):
                    row[f"{group}.{metric}"] = _stat(
                        per_seed,
                        lambda r, g=group, m=metric, s=score: r["scores"][s]["means"][g][m],
                        lambda r, g=group, m=metric, s=score: _interval(r, s, "means", g, m),
                    )
            for name in first["scores"][score]["per_set"]:
                sets["all"] = sets["all"] if name in sets["all"] else [*sets["all"], name]
                for metric in SET_METRICS:
                    row[f"{name}.{metric}"] = _stat(
                        per_seed,
                        lambda r, n=name, m=metric, s=score: r["scores"][s]["per_set"][n][m],
                        lambda r, n=name, m=metric, s=score: _interval(r, s, "per_set", n, m),
                    )

            # A score that classifies with its own logits (PATT) carries its own accuracy.
            def accuracy(r: dict[str, Any], key: str, s: str = score) -> float:
                source = r["scores"][s].get("accuracy") or r
                if key == "id_accuracy":
                    return float(source["id_accuracy"])
                return float((source.get("shot_accuracy") or {}).get(key, float("nan")))

            for key in ("id_accuracy", "many_acc", "medium_acc", "few_acc"):
                row[key] = _stat(per_seed, lambda r, k=key: accuracy(r, k))
            rows.append(row)
            if row["default_score"] and all(
                score in r.get("per_class_flagged", {}) for r in per_seed.values()
            ):
                flagged = np.array(
                    [per_seed[s]["per_class_flagged"][score] for s in sorted(per_seed)], float
                )
                per_class[method.label] = {
                    "score": score,
                    "seeds": sorted(per_seed),
                    "mean": np.nanmean(flagged, axis=0).tolist(),
                    "std": np.nanstd(flagged, axis=0).tolist(),
                }
    own = [r for r in rows if r["default_score"]]
    if sets:  # near-OOD sets first, then far, then any other
        grouped = [*sets["near"], *sets["far"]]
        sets["all"] = [*grouped, *(n for n in sets["all"] if n not in grouped)]
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
        "sets": sets,
        "classes": classes,
        "rows": rows,
        "ranking": {
            key: ranking(own, key, also) for key, also in RANKED_BY if own and key in own[0]
        },
        "noise_rule": NOISE_RULE,
        "per_class_flagged": per_class,
        "trends": check_trends(rows),
    }


# the orders the summary ranks the methods' own scores by, with the metric stepped beside
RANKED_BY = (("all.auroc", ("all.fpr95",)), ("near.auroc", ("near.fpr95",)))
