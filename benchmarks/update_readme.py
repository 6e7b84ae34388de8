"""Fill the README's result sections from the files the code wrote (never typed by hand).

* ``demo-results``: the main table of ``runs/demo/summary.json`` (written by ``oodlab demo``);
* ``bench-results``: the method's-own-score rows and the trend checks of
  ``benchmarks/results/fmnist_lt/summary.json`` (a copy of ``oodlab bench fmnist_lt``'s);
* ``speed-results``: the figures of ``benchmarks/results/*.json``.

Usage: ``python benchmarks/update_readme.py [--demo runs/demo] [--bench DIR]``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from oodlab.bench import HEADER, table_rows
from oodlab.bench_trends import trends_markdown
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--bench", type=Path, default=ROOT / "benchmarks/results/fmnist_lt")
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
            # one level below the README's "On the offline benchmark" heading
            *(line.replace("## ", "#### ", 1) for line in trends_markdown(bench.get("trends", []))),
        ]
        text = replace_section(text, "bench-results", "\n".join(body))
    text = replace_section(text, "speed-results", speed_lines(ROOT / "benchmarks" / "results"))
    readme.write_text(text)


if __name__ == "__main__":
    main()
