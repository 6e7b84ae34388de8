"""Small shared pieces of the figures: the Agg backend, atomic PNG writes, the operating points
drawn on the curves, shot-group colours, and reading ``train_log.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from oodlab.io import atomic_write

SHOT_COLOURS = {"many": "#d4e6f7", "medium": "#fbeec2", "few": "#f7cfcc"}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int = 110) -> None:
    atomic_write(path, lambda h: fig.savefig(h, format="png", dpi=dpi, bbox_inches="tight"))
    pyplot().close(fig)


def operating_point(fpr: np.ndarray, tpr: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The first ROC point with TPR >= ``level`` (the ``fpr95`` convention): ``(fpr, tpr)``."""
    index = int(np.argmax(tpr >= level))
    return float(fpr[index]), float(tpr[index])


def threshold_at_id_tpr(id_scores: np.ndarray, level: float = 0.95) -> float:
    """The lowest threshold ``t`` with at least ``level`` of ID scoring ``<= t`` (accepted);
    scores above ``t`` are flagged as OOD (the ``fpr95_id`` operating point)."""
    ordered = np.sort(np.asarray(id_scores, dtype=float))
    return float(ordered[max(0, int(np.ceil(level * ordered.size)) - 1)])


def read_epochs(path: Path) -> list[dict[str, Any]]:
    """The epoch lines of a ``train_log.jsonl`` in file order (empty if the file is absent)."""
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("scope", "epoch") == "epoch" and "loss" in entry:
            rows.append(entry)
    return rows
