"""Write a bench summary as ``summary.md``, ``summary.csv``, ``summary.tex`` and ``summary.json``.

All four come from the one summary dict of :func:`oodlab.bench.summarise`, so their numbers
agree by construction (a test parses them back). Values are percent in md / tex / csv-free
text, fractions in json and csv. Cells are ``mean ± std`` over seeds (population std); the
ranking and trend sections give paired differences over seeds (:mod:`oodlab.bench.stats`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from oodlab.bench.latex import LAYOUTS, summary_tex
from oodlab.bench.trends import trends_markdown
from oodlab.eval.paper_bench import paper_markdown
from oodlab.eval.report import markdown_table, percent
from oodlab.io import atomic_write_json, atomic_write_text

__all__ = [
    "HEADER",
    "LAYOUTS",
    "METRICS",
    "SET_METRICS",
    "cell",
    "summary_markdown",
    "table_rows",
    "write_summary",
]

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_id")
SET_METRICS = ("auroc", "aupr_out", "fpr95")
ACCURACIES = ("id_accuracy", "many_acc", "medium_acc", "few_acc")

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


def cell(stat: dict[str, Any] | None) -> str:
    """``mean ± std`` in percent (just the mean for one seed; ``—`` when absent)."""
    if stat is None:
        return "—"
    if stat.get("n", 1) > 1 and "std" in stat:
        return f"{percent(stat['mean'])} ± {100 * stat['std']:.2f}"
    return percent(stat["mean"])


def _label(row: dict[str, Any]) -> str:
    return row["score"] + (" (method's score)" if row.get("default_score") else "")


def table_rows(summary: dict[str, Any], only_highlight: bool = False) -> list[list[str]]:
    keep = set(summary["highlight"])
    body = []
    for row in summary["rows"]:
        if only_highlight and not (row["default_score"] or row["score"] in keep):
            continue
        body.append(
            [
                row["method"],
                _label(row),
                *(cell(row.get(f"all.{m}")) for m in METRICS),
                *(cell(row.get(k)) for k in ACCURACIES),
            ]
        )
    return body


def _own_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in summary["rows"] if r["default_score"]]


def _tied(summary: dict[str, Any], key: str) -> dict[tuple[str, str], str]:
    """Per (method, score), its rank on ``key`` with ``≈`` when the step is within noise."""
    marks = {}
    for entry in summary.get("ranking", {}).get(key, []):
        mark = f"{entry['rank']}{' ≈' if entry.get('tied_with_above') else ''}"
        marks[(entry["method"], entry["score"])] = mark
    return marks


def near_far_rows(
    summary: dict[str, Any], extra: list[dict[str, Any]] | None = None
) -> list[list[str]]:
    """Rank, method, score, near / far / all AUROC and FPR95, ID and shot accuracies."""
    ranks = _tied(summary, "all.auroc")
    groups = [g for g in ("near", "far", "all") if summary.get("sets", {}).get(g) or g == "all"]
    body = []
    for row in [*_own_rows(summary), *(extra or [])]:
        body.append(
            [
                ranks.get((row["method"], row["score"]), "—"),
                row["method"],
                row["score"],
                *(cell(row.get(f"{g}.{m}")) for g in groups for m in ("auroc", "fpr95")),
                *(cell(row.get(k)) for k in ACCURACIES),
            ]
        )
    return body


def near_far_header(summary: dict[str, Any]) -> list[str]:
    groups = [g for g in ("near", "far", "all") if summary.get("sets", {}).get(g) or g == "all"]
    return [
        "rank",
        "method",
        "score",
        *(f"{g} {m}" for g in groups for m in ("AUROC ↑", "FPR95 ↓")),
        "ID acc ↑",
        "many ↑",
        "medium ↑",
        "few ↑",
    ]


def per_set_table(summary: dict[str, Any]) -> str:
    """Each method's own score on every OOD set (AUROC / FPR95), sets in near-then-far order."""
    sets = summary.get("sets", {}).get("all", [])
    near = set(summary.get("sets", {}).get("near", []))
    header = ["method", "score"]
    for name in sets:
        tag = "near" if name in near else "far"
        header += [f"{name} ({tag}) AUROC ↑", f"{name} FPR95 ↓"]
    body = [
        [
            row["method"],
            row["score"],
            *(cell(row.get(f"{n}.{m}")) for n in sets for m in ("auroc", "fpr95")),
        ]
        for row in _own_rows(summary)
    ]
    return markdown_table(header, body)


def _diff(step: dict[str, Any] | None) -> str:
    if step is None or not math.isfinite(step["mean"]):
        return "—"
    spread = f" ± {100 * step['std']:.2f}" if step["n"] > 1 else ""
    return f"{100 * step['mean']:+.2f}{spread}"


def ranking_table(summary: dict[str, Any], key: str) -> str:
    """The ranking on ``key`` with the paired step to the row above and the bootstrap CI."""
    rows = {(r["method"], r["score"]): r for r in summary["rows"]}
    also = key.split(".")[0] + ".fpr95"
    header = [
        "rank",
        "method",
        "score",
        f"{key} (mean ± std)",
        f"{key} 95% bootstrap CI (mean over seeds)",
        f"Δ {key}: row above − this (paired)",
        f"Δ {also}: row above − this (paired)",
        "step",
    ]
    body = []
    for entry in summary.get("ranking", {}).get(key, []):
        row = rows[(entry["method"], entry["score"])]
        ci = row[key].get("ci")
        steps = entry.get("step", {})
        body.append(
            [
                str(entry["rank"]),
                entry["method"],
                entry["score"],
                cell(row[key]),
                f"[{percent(ci[0])}, {percent(ci[1])}]" if ci else "—",
                _diff(steps.get(key)),
                _diff(steps.get(also)),
                "—"
                if key not in steps
                else ("≈ within noise" if entry["tied_with_above"] else "clear"),
            ]
        )
    return markdown_table(header, body)


def per_class_table(summary: dict[str, Any]) -> str:
    """Per method (its own score), the fraction of each ID class flagged as OOD at the fpr95
    threshold, columns named by class with training count and shot group."""
    classes = summary.get("classes", [])
    flagged = summary.get("per_class_flagged", {})
    if not classes or not flagged:
        return ""
    header = ["method", "score"] + [
        f"{c['name']} (n={c['train_count']}, {c['shot']})"
        if c.get("train_count") is not None
        else c["name"]
        for c in classes
    ]
    body = []
    for method, entry in flagged.items():
        stats = [
            {"mean": m, "std": s, "n": len(entry["seeds"])}
            for m, s in zip(entry["mean"], entry["std"])
        ]
        body.append([method, entry["score"], *(cell(s) for s in stats)])
    return markdown_table(header, body)


def summary_markdown(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    sets = summary.get("sets", {})
    lines = [
        f"# oodlab bench `{summary['preset']}`",
        "",
        f"{summary['description']}. Seeds: {seeds} (mean ± population std). All values in percent; "
        "OOD metrics are the unweighted mean over the OOD sets; OOD is the positive class. "
        "FPR95 = ID flagged when 95% of OOD is flagged (PASCL / ImOOD / PATT / OpenOOD).",
        "",
    ]
    if summary.get("missing_runs"):
        lines += [
            f"**Partial**: not trained yet, left out: {', '.join(summary['missing_runs'])}.",
            "",
        ]
    if sets:
        lines += [
            f"Near-OOD: {', '.join(sets.get('near', [])) or 'none'}; far-OOD: "
            f"{', '.join(sets.get('far', [])) or 'none'}.",
            "",
        ]
    if summary.get("ranking"):
        lines += [
            "## Each method with its own score: near, far, all",
            "",
            "Rank by all-sets AUROC; `≈` marks a method whose step from the one ranked above is "
            f"within noise ({summary.get('noise_rule', '')}).",
            "",
            markdown_table(near_far_header(summary), near_far_rows(summary)),
            "",
            "## Per OOD set (each method's own score)",
            "",
            per_set_table(summary),
            "",
        ]
        for key in summary["ranking"]:
            lines += [f"## Ranking by {key}", "", ranking_table(summary, key), ""]
    lines += [
        "## Main scores (mean over all OOD sets)",
        "",
        markdown_table(HEADER, table_rows(summary, only_highlight=True)),
        "",
        *trends_markdown(summary.get("trends", [])),
        *paper_markdown(summary),  # the published rows beside ours, when a table matches
    ]
    per_class = per_class_table(summary)
    if per_class:
        lines += [
            "## ID images flagged as OOD, per class (each method's own score)",
            "",
            "At the threshold flagging 95% of the pooled OOD images; head classes first. "
            "A high rate on few-shot classes is the tail-as-OOD failure ImOOD and PATT target.",
            "",
            per_class,
            "",
        ]
    lines += ["## Every score", "", markdown_table(HEADER, table_rows(summary))]
    return "\n".join(lines) + "\n"


def summary_csv(summary: dict[str, Any]) -> str:
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
                *(row.get(k, {}).get(s, "") for k in keys for s in ("mean", "std")),
            ]
        )
    return buffer.getvalue()


def write_summary(summary: dict[str, Any], out: Path, layout: str = "near_far") -> None:
    """summary.{json,md,csv,tex} in ``out``; ``layout`` picks the tex columns (LAYOUTS)."""
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    atomic_write_text(out / "summary.csv", summary_csv(summary))
    atomic_write_text(out / "summary.tex", summary_tex(summary, layout))
