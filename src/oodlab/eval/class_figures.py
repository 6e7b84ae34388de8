"""The per-class figure: the fraction of each ID class flagged as OOD (the tail-as-OOD failure
ImOOD and PATT target), with class names, training counts and many / medium / few bands.

Up to ``MAX_SERIES`` series (scores or methods) are drawn as grouped bars; more as an
annotated heatmap (series × classes) whose class labels carry the same names, counts and shot
colours; past ``MAX_BARS`` bars in all (e.g. 1000 classes) as a bounded heatmap at most 16 in
wide with a shot strip and every ``C / 20``-th class labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oodlab.eval.figure_parts import SHOT_COLOURS, pyplot, save_png

__all__ = ["MAX_BARS", "MAX_SERIES", "save_flagged_per_class"]

MAX_SERIES = 6
_YLABEL = "ID flagged as OOD (%)\nat 95% OOD flagged"


def _tick(info: Mapping[str, Any]) -> str:
    count = info.get("train_count")
    return f"{info['name']}\nn={count}" if count is not None else str(info["name"])


def _heatmap(
    flagged: Mapping[str, np.ndarray], path: Path, classes: Sequence[Mapping[str, Any]]
) -> None:
    plt = pyplot()
    names = list(flagged)
    matrix = 100 * np.array([np.asarray(flagged[n], float) for n in names])
    num_classes = matrix.shape[1]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * num_classes + 2.5), 0.3 * len(names) + 2.2))
    image = ax.imshow(matrix, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    if num_classes <= 40:
        for (i, j), value in np.ndenumerate(matrix):
            colour = "white" if value > 60 else "black"
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, color=colour)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xticks(range(num_classes))
    ax.set_xticklabels(
        [_tick(c) for c in classes], fontsize=7, rotation=0 if num_classes <= 12 else 90
    )
    for label, info in zip(ax.get_xticklabels(), classes):
        if info.get("shot") in SHOT_COLOURS:
            label.set_bbox({"facecolor": SHOT_COLOURS[info["shot"]], "edgecolor": "none"})
    shots = [s for s in SHOT_COLOURS if any(c.get("shot") == s for c in classes)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=SHOT_COLOURS[s]) for s in shots]
    if handles:
        ax.legend(
            handles,
            [f"{s}-shot classes" for s in shots],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.12, 1.0),
        )
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label=_YLABEL.replace("\n", " "))
    ax.set_xlabel("ID class (label order; training images per class)")
    save_png(fig, path)


def save_flagged_per_class(
    flagged: Mapping[str, np.ndarray],
    path: Path,
    classes: Sequence[Mapping[str, Any]] | None = None,
    spread: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Per ID class, the fraction flagged as OOD at the fpr95 threshold, one bar per score or
    method (a heatmap past ``MAX_SERIES`` of them or ``MAX_BARS`` bars); tick labels give the
    class name and training count, background bands the shot group (many / medium / few);
    ``spread``: error bars."""
    if not flagged:
        return
    num_classes = len(next(iter(flagged.values())))
    classes = list(classes or [{"index": c, "name": f"class {c}"} for c in range(num_classes)])
    if num_classes * len(flagged) > MAX_BARS:
        _flagged_heatmap(flagged, path, classes)
        return
    if len(flagged) > MAX_SERIES:
        _heatmap(flagged, path, classes)
        return
    plt = pyplot()
    names = list(flagged)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * num_classes * max(1.0, len(names) / 3)), 3.8))
    for c, info in enumerate(classes):
        shot = info.get("shot")
        if shot in SHOT_COLOURS:
            ax.axvspan(c - 0.5, c + 0.5, color=SHOT_COLOURS[shot], linewidth=0)
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors
    for i, name in enumerate(names):
        x = np.arange(num_classes) + (i - (len(names) - 1) / 2) * width
        error = None if spread is None or name not in spread else 100 * np.asarray(spread[name])
        ax.bar(
            x,
            100 * np.asarray(flagged[name]),
            width=width,
            label=name,
            color=colours[i % len(colours)],
            yerr=error,
            error_kw={"linewidth": 0.6},
        )
    ax.set_xticks(np.arange(num_classes))
    ax.set_xticklabels(
        [_tick(c) for c in classes],
        fontsize=7,
        rotation=0 if num_classes <= 12 else 90,
    )
    ax.set_xlim(-0.5, num_classes - 0.5)
    ax.set_ylim(0, 105)
    ax.set_ylabel(_YLABEL)
    handles, labels = ax.get_legend_handles_labels()
    shots = [s for s in SHOT_COLOURS if any(c.get("shot") == s for c in classes)]
    for shot in shots:
        handles.append(plt.Rectangle((0, 0), 1, 1, color=SHOT_COLOURS[shot]))
        labels.append(f"{shot}-shot classes (band)")
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("ID class (label order; training images per class)")
    save_png(fig, path)


#: Above this many bars (classes × scores) the per-class chart becomes a bounded heatmap.
MAX_BARS = 240


def _flagged_heatmap(
    flagged: Mapping[str, np.ndarray], path: Path, classes: Sequence[Mapping[str, Any]]
) -> None:
    """Scores × classes heatmap of the flagged fraction, at most 16 in wide whatever C is.

    Classes stay in label order (long-tail order: head to tail); a strip above marks the shot
    groups; every ``C / 20``-th class is labelled. At 1000 classes × 19 scores: 16 × 6 in.
    """
    plt = pyplot()
    names = list(flagged)
    grid = 100 * np.vstack([np.asarray(flagged[n], dtype=float) for n in names])
    num_classes = grid.shape[1]
    fig, (strip, ax) = plt.subplots(
        2,
        1,
        figsize=(16.0, 1.2 + 0.25 * len(names)),
        sharex=True,
        gridspec_kw={"height_ratios": [1, max(4, len(names))]},
    )
    shot_index = {s: i for i, s in enumerate(SHOT_COLOURS)}
    bands = np.array([[shot_index.get(str(c.get("shot")), -1) for c in classes]], dtype=np.float64)
    bands[bands < 0] = np.nan
    if not np.isnan(bands).all():
        from matplotlib.colors import ListedColormap

        cmap = ListedColormap(list(SHOT_COLOURS.values()))
        strip.imshow(bands, aspect="auto", cmap=cmap, vmin=0, vmax=len(SHOT_COLOURS) - 1)
    strip.set_yticks([])
    strip.set_title(" / ".join(f"{s}-shot" for s in SHOT_COLOURS) + " classes (strip)", fontsize=7)
    image = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0, vmax=100, interpolation="none")
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    step = max(1, num_classes // 20)
    ticks = np.arange(0, num_classes, step)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(classes[t].get("name", t)) for t in ticks], fontsize=6, rotation=90)
    ax.set_xlabel(f"ID class (label order; {num_classes} classes)")
    fig.colorbar(image, ax=[strip, ax], label="ID flagged as OOD (%)\nat 95% OOD flagged")
    save_png(fig, path)
