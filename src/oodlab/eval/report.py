"""Write an evaluation as results.json / results.csv / results.md and PNG figures.

Every file is written atomically. The markdown table labels both FPR95 conventions
explicitly; a bare "FPR95" never appears.
"""

from __future__ import annotations

import csv
import io
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


def write_report(result: EvalResult, out_dir: str | Path, plots: bool = True) -> Path:
    """Write results.{json,csv,md} (and figures/) into ``out_dir``; returns the folder."""
    out = Path(out_dir)
    atomic_write_json(out / "results.json", result.to_dict())
    atomic_write_text(out / "results.csv", results_csv(result))
    atomic_write_text(out / "results.md", results_markdown(result))
    if plots and result.raw:
        figures = out / "figures"
        for name, sets in result.raw.items():
            save_histograms(sets, figures / f"hist_{name}.png", title=name)
            save_roc_curves(sets, figures / f"roc_{name}.png", title=name)
        save_flagged_per_class(result.per_class_flagged, figures / "flagged_per_class.png")
    return out


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    atomic_write(
        path, lambda handle: fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    )
    _pyplot().close(fig)


def save_histograms(sets: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """Histograms of the ID scores against each OOD set's scores, one panel per OOD set."""
    plt = _pyplot()
    ood_names = [k for k in sets if k != "id"]
    fig, axes = plt.subplots(1, len(ood_names), figsize=(4 * len(ood_names), 3), squeeze=False)
    for ax, name in zip(axes[0], ood_names):
        values = np.concatenate([sets["id"], sets[name]])
        finite = values[np.isfinite(values)]
        bins = np.linspace(finite.min(), finite.max(), 50) if finite.size else 10
        ax.hist(sets["id"], bins=bins, alpha=0.6, density=True, label="ID")
        ax.hist(sets[name], bins=bins, alpha=0.6, density=True, label=name)
        ax.set_xlabel(f"{title} score (higher = more OOD)")
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def save_roc_curves(sets: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """ROC curves (OOD positive) of the score, one curve per OOD set."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for name, values in sets.items():
        if name == "id":
            continue
        labels = np.r_[np.zeros(len(sets["id"])), np.ones(len(values))]
        fpr, tpr, _ = roc_curve(labels, np.r_[sets["id"], values])
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set_xlabel("fraction of ID flagged (FPR)")
    ax.set_ylabel("fraction of OOD flagged (TPR)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)


def save_flagged_per_class(flagged: Mapping[str, np.ndarray], path: Path) -> None:
    """Per ID class, the fraction flagged as OOD at the fpr95 threshold (head vs tail)."""
    if not flagged:
        return
    plt = _pyplot()
    names = list(flagged)
    num_classes = len(next(iter(flagged.values())))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * num_classes * max(1, len(names) / 3)), 3.5))
    # tab20 keeps up to 20 methods apart (the default cycle repeats after 10)
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors
    for i, name in enumerate(names):
        x = np.arange(num_classes) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, flagged[name], width=width, label=name, color=colours[i % len(colours)])
    ax.set_xticks(np.arange(num_classes))
    ax.set_xlabel("ID class (ordered as labelled; long-tailed sets: head first)")
    ax.set_ylabel("ID flagged as OOD @95% OOD flagged")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
