"""Write an evaluation as results.json / results.csv / results.md and PNG figures.

Every file is written atomically. The markdown table labels both FPR95 conventions
explicitly; a bare "FPR95" never appears.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oodlab.io import atomic_write, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from oodlab.eval.evaluate import EvalResult

METRIC_COLUMNS = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_id")
METRIC_HEADERS = {
    "auroc": "AUROC ↑",
    "aupr_in": "AUPR-in ↑",
    "aupr_out": "AUPR-out ↑",
    "fpr95": "FPR95 (ID flagged @95% OOD) ↓",
    "fpr95_id": "FPR95 (OOD kept @95% ID) ↓",
}


def percent(value: float) -> str:
    return "—" if value is None or np.isnan(value) else f"{100 * value:.2f}"


def rows(result: EvalResult) -> list[dict[str, Any]]:
    """One row per (score, OOD set or group mean), all metrics as fractions."""
    table = []
    for name, score in result.scores.items():
        for set_name, values in score.per_set.items():
            table.append({"score": name, "set": set_name, **values})
        for group, values in score.means.items():
            table.append({"score": name, "set": f"{group} mean", **values})
    return table


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def results_markdown(result: EvalResult) -> str:
    """The summary (group means per score) and the full per-set table, in percent."""
    header = ["score", *(METRIC_HEADERS[m] for m in METRIC_COLUMNS)]
    summary_group = "all"
    summary = [
        [name, *(percent(s.means[summary_group][m]) for m in METRIC_COLUMNS)]
        for name, s in result.scores.items()
    ]
    full = [
        [row["score"], row["set"], *(percent(row[m]) for m in METRIC_COLUMNS)]
        for row in rows(result)
    ]
    parts = [
        "# OOD evaluation",
        "",
        f"ID accuracy: {percent(result.id_accuracy)}%",
    ]
    if result.shot_accuracy:
        parts.append(
            "Shot-group accuracy: "
            + ", ".join(
                f"{k.replace('_acc', '')} {percent(v)}%" for k, v in result.shot_accuracy.items()
            )
        )
    parts += [
        "",
        "All values in percent; OOD is the positive class, scores are higher = more OOD.",
        "",
        "## Mean over all OOD sets",
        "",
        markdown_table(header, summary),
        "",
        "## Per OOD set",
        "",
        markdown_table(["score", "set", *header[1:]], full),
    ]
    tuned = {n: s.tuning["selected"] for n, s in result.scores.items() if s.tuning}
    if tuned:
        parts += ["", "## Tuned hyper-parameters", "", f"Rule: {result.meta['tuning_rule']}.", ""]
        parts += [f"- {name}: {params}" for name, params in tuned.items()]
    notes = {n: s.note for n, s in result.scores.items() if s.note}
    if notes:
        parts += ["", "## Score notes", ""]
        parts += [f"- {name}: {note}" for name, note in notes.items()]
    if result.skipped:
        parts += ["", "## Skipped scores", ""]
        parts += [f"- {name}: {why}" for name, why in result.skipped.items()]
    if result.omitted:
        parts += ["", "## Left out (not run)", ""]
        parts += [f"- {name}: {why}" for name, why in result.omitted.items()]
    return "\n".join(parts) + "\n"


def results_csv(result: EvalResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["score", "set", *_metric_keys(result)])
    writer.writeheader()
    for row in rows(result):
        writer.writerow(row)
    return buffer.getvalue()


def _metric_keys(result: EvalResult) -> list[str]:
    for score in result.scores.values():
        for values in score.per_set.values():
            return list(values)
    return list(METRIC_COLUMNS)


def write_report(
    result: EvalResult,
    out_dir: str | Path,
    plots: bool = True,
    figure_scores: Sequence[str] | None = None,
) -> Path:
    """Write results.{json,csv,md}, the per-sample scores (``scores.npz``, for redrawing) and
    figures/ (:func:`oodlab.eval.figures.write_evaluation_figures`; ``figure_scores`` limits
    the per-score folders) into ``out_dir``; returns the folder. The figures of the
    evaluation this one replaces are removed first, nothing else."""
    from oodlab.eval.figures import write_evaluation_figures

    out = Path(out_dir)
    previous = _previous_scores(out / "results.json")
    atomic_write_json(out / "results.json", result.to_dict())
    atomic_write_text(out / "results.csv", results_csv(result))
    atomic_write_text(out / "results.md", results_markdown(result))
    if result.raw:
        arrays = {
            f"{score}::{name}": np.asarray(values, dtype=np.float32)
            for score, sets in result.raw.items()
            for name, values in sets.items()
        }
        atomic_write(out / "scores.npz", lambda handle: _savez(handle, arrays))
    if plots and result.raw:
        write_evaluation_figures(result, out / "figures", figure_scores, previous)
    return out


def _previous_scores(results_file: Path) -> list[str]:
    """The score names of the evaluation about to be replaced (its figures get removed)."""
    if not results_file.is_file():
        return []
    try:
        return [str(s) for s in json.loads(results_file.read_text()).get("scores", {})]
    except (json.JSONDecodeError, AttributeError):
        return []


def _savez(handle: Any, arrays: Mapping[str, np.ndarray]) -> None:
    np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
