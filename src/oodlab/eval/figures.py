"""Figures of an evaluation and of a bench (matplotlib, Agg, PNG, atomic writes).

Entry points:

* :func:`write_evaluation_figures` — everything for one evaluation, into ``figures/``:
  ``overview.png`` (scores × OOD sets by AUROC, near and far separated), ``flagged_per_class.png``
  (class names, training counts, many / medium / few bands), and one folder per score with
  ``roc.png`` (linear and log-FPR panels, AUROC in the legend, the 95% operating point marked),
  ``pr.png`` and ``hist.png`` (density of ID vs each OOD set, the threshold at 95% ID
  accepted). ``figures/index.json`` lists what it wrote; the next evaluation into the same
  folder removes exactly those files (and the loose ``hist_*.png`` / ``roc_*.png`` of the
  scores an older ``results.json`` names) before drawing, never anything else.
* :func:`save_overview_heatmap`, :func:`save_flagged_per_class`,
  :func:`save_training_curves` — also used by the bench (methods × sets, one bar per method,
  one curve per method).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from oodlab.eval.class_figures import MAX_BARS, save_flagged_per_class
from oodlab.eval.figure_parts import (
    operating_point,
    pyplot,
    save_png,
    threshold_at_id_tpr,
)
from oodlab.io import atomic_write_json

__all__ = [
    "INDEX",
    "MAX_BARS",
    "remove_previous_figures",
    "save_flagged_per_class",
    "save_histograms",
    "save_overview_heatmap",
    "save_pr_curves",
    "save_roc_curves",
    "save_training_curves",
    "write_evaluation_figures",
]

INDEX = "index.json"
FprAxes = Literal["linear", "log", "both"]


def save_histograms(sets: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """Density of the ID scores against each OOD set's, one panel per set, with the threshold
    that accepts 95% of ID (scores above it are flagged as OOD)."""
    plt = pyplot()
    names = [k for k in sets if k != "id"]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    threshold = threshold_at_id_tpr(sets["id"])
    for ax, name in zip(axes[0], names):
        values = np.concatenate([sets["id"], sets[name]])
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
        bins = np.linspace(low, high, 50) if high > low else 10
        ax.hist(sets["id"], bins=bins, alpha=0.55, density=True, label="ID test")
        ax.hist(sets[name], bins=bins, alpha=0.55, density=True, label=name)
        flagged = 100 * float(np.mean(sets[name] > threshold))
        ax.axvline(threshold, color="k", linestyle="--", linewidth=1)
        ax.plot([], [], "k--", linewidth=1, label=f"95% ID accepted ({flagged:.1f}% OOD flagged)")
        ax.set_xlabel(f"{title} score (higher = more OOD)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    save_png(fig, path)


def save_roc_curves(
    sets: Mapping[str, np.ndarray], path: Path, title: str, fpr_axes: FprAxes = "both"
) -> None:
    """ROC curves (OOD positive) per OOD set, AUROC and FPR95 in the legend, the operating point
    where 95% of OOD is flagged marked; a linear and / or a log-FPR panel."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    kinds = ["linear", "log"] if fpr_axes == "both" else [fpr_axes]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.6 * len(kinds), 4), squeeze=False)
    n_id = len(sets["id"])
    for ax, kind in zip(axes[0], kinds):
        for i, (name, values) in enumerate((k, v) for k, v in sets.items() if k != "id"):
            labels = np.r_[np.zeros(n_id), np.ones(len(values))]
            scores = np.r_[sets["id"], values]
            fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
            auroc = roc_auc_score(labels, scores)
            x95, y95 = operating_point(fpr, tpr)
            colour = f"C{i % 10}"
            floor = 0.5 / n_id
            shown = np.maximum(fpr, floor) if kind == "log" else fpr
            ax.plot(
                shown,
                tpr,
                color=colour,
                label=f"{name}: AUROC {100 * auroc:.1f}, FPR95 {100 * x95:.1f}",
            )
            ax.plot(max(x95, floor) if kind == "log" else x95, y95, "o", color=colour, ms=5)
        ax.axhline(0.95, color="grey", linestyle=":", linewidth=0.8)
        if kind == "log":
            ax.set_xscale("log")
            ax.set_xlim(0.5 / n_id, 1)
            ax.set_xlabel("fraction of ID flagged (FPR, log scale)")
        else:
            ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
            ax.set_xlabel("fraction of ID flagged (FPR)")
        ax.set_ylabel("fraction of OOD flagged (TPR)")
        if ax is axes[0][0]:  # one legend: the panels share their colours
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title} (dots: 95% of OOD flagged)")
    save_png(fig, path)


def save_pr_curves(sets: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """Precision-recall curves with OOD positive, AUPR-out (average precision) in the legend."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4))
    for i, (name, values) in enumerate((k, v) for k, v in sets.items() if k != "id"):
        labels = np.r_[np.zeros(len(sets["id"])), np.ones(len(values))]
        scores = np.r_[sets["id"], values]
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        ax.plot(recall, precision, color=f"C{i % 10}", label=f"{name}: AUPR-out {100 * ap:.1f}")
        ax.axhline(labels.mean(), color=f"C{i % 10}", linestyle=":", linewidth=0.7)
    ax.set_xlabel("OOD recall (fraction of OOD flagged)")
    ax.set_ylabel("OOD precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title} (dotted: chance = OOD share)")
    ax.legend(fontsize=7, loc="lower left")
    save_png(fig, path)


def save_overview_heatmap(
    auroc: Mapping[str, Mapping[str, float]],
    path: Path,
    near: Sequence[str] = (),
    far: Sequence[str] = (),
    title: str = "AUROC (%)",
    highlight: Sequence[str] = (),
) -> None:
    """Heatmap of rows (scores or methods) × OOD sets by AUROC in percent: near-OOD columns,
    then far-OOD, then the near / far / all means, separated by vertical lines; rows sorted by
    the all-sets mean; ``highlight`` rows in bold."""
    plt = pyplot()
    sets = list(next(iter(auroc.values())))
    near_cols = [s for s in near if s in sets]
    far_cols = [s for s in sets if s not in near_cols]
    blocks = [near_cols, far_cols]
    means = {"near mean": near_cols, "far mean": far_cols if near_cols else [], "all mean": sets}
    mean_cols = [k for k, v in means.items() if v]
    rows = sorted(auroc, key=lambda r: -float(np.mean([auroc[r][s] for s in sets])))
    columns = [*near_cols, *far_cols, *mean_cols]
    matrix = np.array(
        [
            [
                100 * (np.mean([auroc[r][s] for s in means[c]]) if c in means else auroc[r][c])
                for c in columns
            ]
            for r in rows
        ]
    )
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.32 * len(rows) + 1.8))
    image = ax.imshow(matrix, cmap="RdYlGn", vmin=50, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(
        [f"{c}\n(near)" if c in near_cols else c for c in columns],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    for label in ax.get_yticklabels():
        if label.get_text() in highlight:
            label.set_fontweight("bold")
    edge = 0
    for block in [*blocks, mean_cols][:-1]:
        edge += len(block)
        if block and edge < len(columns):
            ax.axvline(edge - 0.5, color="k", linewidth=1.5)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="AUROC (%)")
    ax.set_title(title)
    save_png(fig, path)


def save_training_curves(logs: Mapping[str, Path], path: Path) -> bool:
    """Loss terms and ID accuracy per epoch from ``train_log.jsonl`` files (one per label);
    with one log every loss term is drawn, with several the total loss of each. Returns
    whether anything was drawn (no file, no epoch line: nothing)."""
    from oodlab.eval.figure_parts import read_epochs

    epochs = {label: read_epochs(p) for label, p in logs.items()}
    epochs = {k: v for k, v in epochs.items() if v}
    if not epochs:
        return False
    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    skip = {"epoch", "step", "lr", "images_per_s", "id_accuracy", "stage_index", "seconds"}
    for i, (label, rows) in enumerate(epochs.items()):
        x = np.arange(1, len(rows) + 1)
        terms = (
            ["loss"]
            if len(epochs) > 1
            else [k for k in rows[0] if k not in skip and isinstance(rows[0][k], int | float)]
        )
        for j, term in enumerate(terms):
            y = [r.get(term, np.nan) for r in rows]
            name = label if len(epochs) > 1 else term
            loss_ax.plot(
                x, y, color=f"C{(i + j) % 10}", label=name, linewidth=2 if term == "loss" else 1
            )
        accuracy = [100 * r["id_accuracy"] if "id_accuracy" in r else np.nan for r in rows]
        if np.any(np.isfinite(accuracy)):
            acc_ax.plot(x, accuracy, "o-", color=f"C{i % 10}", ms=3, label=label)
        stages = [r.get("stage", "") for r in rows]
        for k in range(1, len(stages)):
            if stages[k] != stages[k - 1]:
                loss_ax.axvline(k + 0.5, color="grey", linestyle=":", linewidth=0.8)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (epoch mean)")
    loss_ax.legend(fontsize=7)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("ID accuracy (%)")
    if acc_ax.lines:
        acc_ax.legend(fontsize=7)
    save_png(fig, path)
    return True


def remove_previous_figures(figures: Path, previous_scores: Sequence[str] = ()) -> None:
    """Delete the figures an earlier evaluation wrote into ``figures`` (those its
    ``index.json`` lists, and the loose ``hist_<score>.png`` / ``roc_<score>.png`` /
    ``flagged_per_class.png`` of the older layout for ``previous_scores``); nothing else."""
    index = figures / INDEX
    listed: list[str] = []
    if index.is_file():
        try:
            listed = [str(p) for p in json.loads(index.read_text()).get("files", [])]
        except (json.JSONDecodeError, AttributeError):
            listed = []
    listed += [f"{kind}_{s}.png" for s in previous_scores for kind in ("hist", "roc")]
    listed += ["flagged_per_class.png"] if previous_scores else []
    root = figures.resolve()
    for relative in listed:
        target = (figures / relative).resolve()
        if root in target.parents and target.is_file():
            target.unlink()
            parent = target.parent
            if parent != root and not any(parent.iterdir()):
                parent.rmdir()
    index.unlink(missing_ok=True)


def write_evaluation_figures(
    result: Any,
    figures: Path,
    scores: Sequence[str] | None = None,
    previous_scores: Sequence[str] = (),
) -> list[Path]:
    """All figures of one evaluation (module doc) into ``figures``; per-score folders for
    ``scores`` (default: every score with raw values). Returns the files written."""
    remove_previous_figures(figures, previous_scores)
    written: list[Path] = []
    raw: Mapping[str, Mapping[str, np.ndarray]] = result.raw
    if result.scores:
        auroc = {n: {k: v["auroc"] for k, v in s.per_set.items()} for n, s in result.scores.items()}
        save_overview_heatmap(
            auroc,
            figures / "overview.png",
            result.near,
            result.far,
            "AUROC (%) per score and OOD set",
        )
        written.append(figures / "overview.png")
    if result.per_class_flagged:
        save_flagged_per_class(
            result.per_class_flagged, figures / "flagged_per_class.png", result.classes or None
        )
        written.append(figures / "flagged_per_class.png")
    for name in scores if scores is not None else list(raw):
        if name not in raw:
            continue
        folder = figures / name
        save_roc_curves(raw[name], folder / "roc.png", name)
        save_pr_curves(raw[name], folder / "pr.png", name)
        save_histograms(raw[name], folder / "hist.png", name)
        written += [folder / "roc.png", folder / "pr.png", folder / "hist.png"]
    atomic_write_json(
        figures / INDEX, {"files": sorted(str(p.relative_to(figures)) for p in written)}
    )
    return written
