"""The papers' rows under ours in a bench summary (``summary.md``), when a preset matches a
published table (:data:`BENCH_TABLES`).

Bench summary rows hold ``GROUP.METRIC`` statistics (mean ± std over seeds) under the same
keys as :data:`oodlab.eval.protocols.PAPER_RESULTS`' columns, so each method's own-score row
is set beside the paper row it reproduces (the CE baseline beside the paper's MSP row).
"""

from __future__ import annotations

from typing import Any

from oodlab.eval.protocols import paper_table

#: Bench preset → (paper table, bench method label → table row).
BENCH_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "cifar10_lt": (
        "pascl_t1_cifar10_lt",
        {"ce": "MSP", "oe": "OE", "energy_oe": "EnergyOE", "pascl": "PASCL"},
    ),
    "cifar100_lt": (
        "pascl_t2_cifar100_lt",
        {"ce": "MSP", "oe": "OE", "energy_oe": "EnergyOE", "pascl": "PASCL"},
    ),
    "imagenet_lt": ("pascl_t3_imagenet_lt", {"oe": "OE", "pascl": "PASCL"}),
    "waterbirds": ("ascood_t1_waterbirds", {"ce": "MSP", "ascood": "ASCOOD"}),
    "celeba": ("ascood_t1_celeba", {"ce": "MSP", "ascood": "ASCOOD"}),
    "cars": ("ascood_t2_cars", {"ce": "MSP", "ascood": "ASCOOD"}),
    "aircraft": ("ascood_t2_aircraft", {"ce": "MSP", "ascood": "ASCOOD"}),
    "cifar10": ("ascood_t1_cifar10", {"ce": "MSP", "ascood": "ASCOOD"}),
    "cifar100": ("ascood_t1_cifar100", {"ce": "MSP", "ascood": "ASCOOD"}),
    "imagenet1k": ("mos_t1_imagenet1k", {"mos": "MOS"}),
}
#: ImOOD's table for the ImOOD rows of the long-tailed presets (its own paper's numbers).
IMOOD_TABLES = {"cifar10_lt": "imood_t1_cifar10_lt", "cifar100_lt": "imood_t1_cifar100_lt",
                "imagenet_lt": "imood_t2_imagenet_lt"}  # fmt: skip


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _section(summary: dict[str, Any], key: str, rows: dict[str, str]) -> list[str]:
    table = paper_table(key)
    columns = table["columns"]
    lines = [
        f"## Paper: {table['label']}",
        "",
        f"Source: {table['source']}. Ours: mean over seeds of each method with its own score.",
        "",
        "| | " + " | ".join(columns.values()) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    found = False
    for row in summary.get("rows", []):
        paper_row = rows.get(row["method"])
        if not row.get("default_score") or paper_row is None:
            continue
        found = True
        paper = table["rows"][paper_row]
        ours = {k: (row.get(k) or {}).get("mean") for k in columns}
        ours = {k: None if v is None else 100 * v for k, v in ours.items()}
        diff = {k: None if ours[k] is None or k not in paper else ours[k] - paper[k]
                for k in columns}  # fmt: skip
        lines += [
            f"| ours: {row['method']} ({row['score']}) | "
            + " | ".join(_fmt(ours[k]) for k in columns)
            + " |",
            f"| paper: {paper_row} | " + " | ".join(_fmt(paper.get(k)) for k in columns) + " |",
            "| difference | " + " | ".join(_fmt(diff[k], True) for k in columns) + " |",
        ]
    return [*lines, ""] if found else []


def paper_markdown(summary: dict[str, Any]) -> list[str]:
    """Markdown lines of the papers' rows for this bench summary (none if no table matches)."""
    preset = summary.get("preset", "")
    lines: list[str] = []
    if preset in BENCH_TABLES:
        key, rows = BENCH_TABLES[preset]
        lines += _section(summary, key, rows)
    if preset in IMOOD_TABLES:
        lines += _section(summary, IMOOD_TABLES[preset], {"imood": "PASCL + ImOOD"})
    return lines
