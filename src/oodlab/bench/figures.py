"""The bench's own figures, from its summary and run folders, into ``OUT/figures/``:

* ``overview.png``: methods (each with its own score) × OOD sets by mean AUROC over seeds,
  near-OOD columns first, then far, then the means;
* ``flagged_per_class.png``: per ID class (name, training count, shot band) the fraction
  flagged as OOD by each method's own score, mean over seeds with the seed std as error bar;
* ``training_curves.png``: each method's total training loss and ID accuracy per epoch
  (its first seed's ``train_log.jsonl``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from oodlab.eval.figures import save_flagged_per_class, save_overview_heatmap, save_training_curves

__all__ = ["write_bench_figures"]


def write_bench_figures(summary: dict[str, Any], out: Path) -> list[Path]:
    """Draw the bench figures (module doc); returns the files written."""
    figures = out / "figures"
    written = []
    own = [r for r in summary["rows"] if r["default_score"]]
    sets = summary.get("sets", {})
    names = sets.get("all", [])
    if own and names and all(f"{n}.auroc" in r for r in own for n in names):
        auroc = {
            f"{r['method']} ({r['score']})": {n: r[f"{n}.auroc"]["mean"] for n in names}
            for r in own
        }
        save_overview_heatmap(
            auroc,
            figures / "overview.png",
            sets.get("near", []),
            sets.get("far", []),
            f"{summary['preset']}: AUROC (%) of each method's own score, mean over seeds",
        )
        written.append(figures / "overview.png")
    flagged = summary.get("per_class_flagged", {})
    if flagged:
        save_flagged_per_class(
            {f"{m} ({e['score']})": np.asarray(e["mean"], float) for m, e in flagged.items()},
            figures / "flagged_per_class.png",
            summary.get("classes") or None,
            {f"{m} ({e['score']})": np.asarray(e["std"], float) for m, e in flagged.items()},
        )
        written.append(figures / "flagged_per_class.png")
    seeds = summary.get("seeds", [])
    if seeds:
        logs = {
            m: out / "runs" / f"{m}-s{seeds[0]}" / "train_log.jsonl"
            for m in dict.fromkeys(r["method"] for r in own)
        }
        if save_training_curves(logs, figures / "training_curves.png"):
            written.append(figures / "training_curves.png")
    return written
