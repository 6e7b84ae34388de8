"""Fill the README's result sections from the files the code wrote (never typed by hand).

* ``open-results`` (the README's first table): near / far / all means, the per-set rows, the
  ranking with its paired steps and the trend checks of
  ``benchmarks/results/fmnist_lt_open/summary.json`` (``oodlab bench fmnist_lt_open``'s);
* ``demo-results``: the main table of ``runs/demo/summary.json`` (written by ``oodlab demo``);
* ``bench-results``: the method's-own-score rows (far-OOD only) and the trend checks of
  ``benchmarks/results/fmnist_lt/summary.json`` (a copy of ``oodlab bench fmnist_lt``'s);
* ``speed-results``: the figures of ``benchmarks/results/*.json``.

Usage: ``python benchmarks/update_readme.py [--demo runs/demo] [--bench DIR] [--open DIR]``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from oodlab.bench import HEADER, table_rows
from oodlab.bench.report import near_far_header, near_far_rows, per_set_table, ranking_table
from oodlab.bench.trends import trends_markdown
from oodlab.eval.report import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def replace_section(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}: start -->\n).*?(<!-- {name}: end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {name} markers")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def speed_lines(results: Path) -> str:
    lines = []
    data = results / "data_throughput.json"
    if data.is_file():
        d = json.loads(data.read_text())
        lines.append(
            f"- Training data, CIFAR-shaped, batch {d['batch_size']} ({d['device']}, "
            f"{d['cpu_threads']} threads): on-device uint8 batches "
            f"{d['device_batches_images_per_s']:,.0f} images/s vs DataLoader "
            f"({d['dataloader_workers']} workers) "
            f"{d['dataloader_images_per_s']:,.0f} images/s: **{d['speedup']:.1f}×** (target ≥ 3×)."
        )
    train = results / "train_speed.json"
    if train.is_file():
        t = json.loads(train.read_text())
        for row in t["results"]:
            lines.append(
                f"- Training loop, {row['model']} ({t['device']}): oodlab "
                f"{row['oodlab_images_per_s']:,.0f} images/s vs a minimal hand-written loop "
                f"{row['hand_written_images_per_s']:,.0f}: **{row['ratio']:.2f}×** "
                "(target ≥ 0.95×)."
            )
    evaluation = results / "eval_speed.json"
    if evaluation.is_file():
        e = json.loads(evaluation.read_text())
        f, k = e["eval_vs_forward"], e["knn"]
        lines.append(
            f"- Evaluation ({e['device']}): all {len(f['scores'])} cached scores on "
            f"{f['model']} outputs take {f['all_scores_from_cache_seconds']:.1f} s vs "
            f"{f['forward_pass_seconds']:.1f} s for one forward pass over the same data: "
            f"**{100 * f['ratio']:.1f}%** (target ≤ 20%)."
        )
        lines.append(
            f"- KNN, {k['bank'][0]:,}×{k['bank'][1]} bank, {k['queries']:,} queries, k={k['k']}: "
            f"faiss {k['seconds']['faiss']:.1f} s, brute-force torch {k['seconds']['torch']:.1f} s "
            f"(max difference {k['max_abs_difference']:.1e})."
        )
    return "\n".join(lines) or "(no benchmark results yet)"


def _trends(summary: dict[str, Any]) -> list[str]:
    # one level below the README's subsection heading
    return [line.replace("## ", "#### ", 1) for line in trends_markdown(summary.get("trends", []))]


def open_lines(summary: dict[str, Any]) -> str:
    """The headline section: near / far / all, per set, the ranking steps, the trends."""
    partial = summary.get("missing_runs")
    lines = [
        f"Seeds: {summary['seeds']}; mean ± std over seeds, in percent. Near-OOD: "
        f"{', '.join(summary['sets'].get('near', []))}; far-OOD: "
        f"{', '.join(summary['sets'].get('far', []))}. FPR95 = ID flagged when 95% of OOD "
        "is flagged. `≈` in the rank column: the step from the method ranked above is within "
        "seed noise (|mean paired difference| ≤ its std).",
        "",
    ]
    if partial:
        lines += [f"**Partial run** (not trained yet, left out: {', '.join(partial)}).", ""]
    lines += [
        markdown_table(near_far_header(summary), near_far_rows(summary)),
        "",
        "Per OOD set (each method's own score):",
        "",
        per_set_table(summary),
        "",
        "Ranking by all-sets AUROC with the paired step to the method above "
        "(95% bootstrap interval: the mean over seeds of each run's interval):",
        "",
        ranking_table(summary, "all.auroc"),
        "",
        *_trends(summary),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--bench", type=Path, default=ROOT / "benchmarks/results/fmnist_lt")
    parser.add_argument("--open", type=Path, default=ROOT / "benchmarks/results/fmnist_lt_open")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    summary_file = args.demo / "summary.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        text = replace_section(
            text, "demo-results", markdown_table(HEADER, table_rows(summary, True))
        )
    bench_file = args.bench / "summary.json"
    if bench_file.is_file():
        bench = json.loads(bench_file.read_text())
        own = {**bench, "rows": [r for r in bench["rows"] if r["default_score"]], "highlight": []}
        body = [
            f"Seeds: {bench['seeds']}.",
            "",
            markdown_table(HEADER, table_rows(own)),
            "",
            *_trends(bench),
        ]
        text = replace_section(text, "bench-results", "\n".join(body))
    open_file = args.open / "summary.json"
    if open_file.is_file():
        text = replace_section(text, "open-results", open_lines(json.loads(open_file.read_text())))
    text = replace_section(text, "speed-results", speed_lines(ROOT / "benchmarks" / "results"))
    scale_file = ROOT / "benchmarks" / "results" / "eval_scale.json"
    if scale_file.is_file() and "<!-- scale-results: start -->" in text:
        text = replace_section(
            text, "scale-results", scale_table(json.loads(scale_file.read_text()))
        )
    readme.write_text(text)


def _gib(value: Any) -> str:
    return "–" if value is None else f"{value / (1 << 30):.2f}"


def scale_table(report: dict[str, Any]) -> str:
    """Size → time, memory rows of ``benchmarks/eval_scale.json``."""
    header = [
        "train × D", "payload GiB", "extract: peak RSS GiB (above imports)", "zoo: s wall / CPU",
        "zoo: peak RSS GiB", "load avg",
    ]  # fmt: skip
    rows = []
    for key, row in report["runs"].items():
        ext, zoo = row.get("extract", {}), row.get("zoo", {})
        extra = None
        if "peak_rss" in ext and "baseline_rss" in ext:
            extra = ext["peak_rss"] - ext["baseline_rss"]
        zoo_time = (
            f"{zoo['seconds']:.0f} / {zoo['cpu_seconds']:.0f}" if "seconds" in zoo else
            ("killed" if zoo.get("killed") else "not run")
        )  # fmt: skip
        rows.append([
            key, _gib(ext.get("payload_bytes")),
            f"{_gib(ext.get('peak_rss'))} ({_gib(extra)})", zoo_time, _gib(zoo.get("peak_rss")),
            f"{row.get('load_average_before', [0])[0]:.1f}",
        ])  # fmt: skip
    return markdown_table(header, rows)


if __name__ == "__main__":
    main()
