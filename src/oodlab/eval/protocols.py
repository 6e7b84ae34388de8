"""Each paper's evaluation protocol as a named preset, and its published numbers beside ours.

A :class:`Protocol` fixes what a paper's table needs: the benchmark (its OOD sets, whose
unweighted means over ``all`` / ``near`` / ``far`` are the table's averages), the score and its
hyper-parameters, and the table in :data:`PAPER_RESULTS` it compares with. The table's columns
name oodlab metric keys, which encode the paper's conventions: ``fpr95_closest`` (the PASCL /
ImOOD / PATT code's closest-recall FPR95), ``fpr95`` (OpenOOD: ID flagged at 95% OOD),
``fpr95_id`` (MOS / KNN: OOD accepted at 95% ID), ``aupr_out`` (average precision, OOD
positive). ``oodlab eval --checkpoint F --protocol NAME`` runs it and prints ours, the paper's
row and the difference; ``oodlab list protocols`` lists them with their tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodlab.errors import ConfigError
from oodlab.registry import Registry

if TYPE_CHECKING:
    from oodlab.eval.evaluate import EvalResult


@dataclass(frozen=True)
class Protocol:
    """One paper's evaluation of one dataset.

    Attributes:
        name: the preset's name (``oodlab list protocols``).
        paper: short citation.
        benchmark: the benchmark preset holding the paper's ID and OOD sets.
        scores: the paper's score(s) with hyper-parameters (``knn:k=300``).
        table: key of :data:`PAPER_RESULTS` (``None``: the paper's table was not found).
        rows: score name → the table row it reproduces (``--paper-row`` picks another).
        formats: the released checkpoint formats the protocol is meant for.
        benchmark_options: options of the benchmark preset.
        notes: where the protocol deviates from the paper, or what is uncertain.
    """

    name: str
    paper: str
    benchmark: str
    scores: tuple[str, ...]
    table: str | None
    rows: Mapping[str, str] = field(default_factory=dict)
    formats: tuple[str, ...] = ()
    benchmark_options: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(protocol: Protocol) -> Protocol:
    """Add ``protocol`` to :data:`PROTOCOLS` (``layout`` is what ``oodlab list`` prints)."""
    table = paper_table(protocol.table)["label"] if protocol.table else "no published table found"
    layout = (
        f"benchmark {protocol.benchmark}; scores {', '.join(protocol.scores)}; "
        f"compare with: {table}"
    )
    PROTOCOLS.register(protocol.name, paper=protocol.paper, layout=layout)(lambda: protocol)
    return protocol


def get_protocol(name: str) -> Protocol:
    return PROTOCOLS.create(name)


@cache
def paper_results() -> dict[str, Any]:
    """The package's ``paper_results.json`` (published tables with their sources)."""
    text = resources.files("oodlab.eval").joinpath("paper_results.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def paper_table(key: str) -> dict[str, Any]:
    tables = paper_results()["tables"]
    if key not in tables:
        raise ConfigError(f"no paper table {key!r}; known: {', '.join(sorted(tables))}")
    table: dict[str, Any] = tables[key]
    return table


def _ours(result: EvalResult, score: str, key: str) -> float | None:
    """Our value (percent) of the paper's column ``key`` (``GROUP.METRIC`` or ``id_accuracy``)."""
    if key == "id_accuracy":
        return 100 * result.id_accuracy
    group, _, metric = key.partition(".")
    value = result.scores[score].means.get(group, {}).get(metric)
    return None if value is None else 100 * value


def paper_comparison(
    protocol: Protocol, result: EvalResult, paper_row: str | None = None
) -> dict[str, Any] | None:
    """Ours, the paper's row and ours − paper for every evaluated score with a row in the
    protocol's table (``paper_row`` compares every score with that row); ``None`` without a
    table."""
    if protocol.table is None:
        return None
    table = paper_table(protocol.table)
    if paper_row is not None and paper_row not in table["rows"]:
        raise ConfigError(
            f"table {protocol.table!r} has no row {paper_row!r}; rows: {', '.join(table['rows'])}"
        )
    entries = []
    for score in result.scores:
        row = paper_row or protocol.rows.get(score)
        if row is None:
            continue
        paper = table["rows"][row]
        ours = {key: _ours(result, score, key) for key in table["columns"]}
        difference = {
            key: None if ours[key] is None or key not in paper else ours[key] - paper[key]
            for key in table["columns"]
        }
        entries.append(
            {"score": score, "row": row, "ours": ours, "paper": paper, "difference": difference}
        )
    return {
        "protocol": protocol.name,
        "table": protocol.table,
        "label": table["label"],
        "source": table["source"],
        "columns": table["columns"],
        "entries": entries,
        "notes": protocol.notes,
    }


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def comparison_markdown(comparison: Mapping[str, Any]) -> str:
    """The comparison as a markdown section: per score, ours / paper / difference rows."""
    columns = comparison["columns"]
    header = ["", *columns.values()]
    lines = [
        f"## Paper: {comparison['label']}",
        "",
        f"Protocol `{comparison['protocol']}`; source: {comparison['source']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for entry in comparison["entries"]:
        ours = [_cell(entry["ours"][k]) for k in columns]
        paper = [_cell(entry["paper"].get(k)) for k in columns]
        diff = [_cell(entry["difference"][k], signed=True) for k in columns]
        lines += [
            f"| ours ({entry['score']}) | " + " | ".join(ours) + " |",
            f"| paper ({entry['row']}) | " + " | ".join(paper) + " |",
            "| difference (ours − paper) | " + " | ".join(diff) + " |",
        ]
    if not comparison["entries"]:
        lines.append("| (no evaluated score has a row in this table; use --paper-row) |")
    if comparison.get("notes"):
        lines += ["", f"Notes: {comparison['notes']}"]
    return "\n".join(lines) + "\n"


def write_comparison(out: Path, comparison: Mapping[str, Any]) -> str:
    """Append the comparison to ``out/results.md`` and store it in ``out/results.json``
    (key ``paper_comparison``), both atomically; return the markdown."""
    from oodlab.io import atomic_write_json, atomic_write_text

    text = comparison_markdown(comparison)
    md, js = out / "results.md", out / "results.json"
    if md.is_file():
        atomic_write_text(md, md.read_text().rstrip() + "\n\n" + text)
    if js.is_file():
        data = json.loads(js.read_text())
        data["paper_comparison"] = comparison
        atomic_write_json(js, data)
    return text


__all__ = [
    "PROTOCOLS",
    "Protocol",
    "comparison_markdown",
    "get_protocol",
    "paper_comparison",
    "paper_results",
    "register_protocol",
]
