"""Which checkpoint a run keeps as its final model: the last epoch, or the best ID accuracy.

``train.keep: best_val_acc`` follows OpenOOD v1.5 (and ASCOOD's scripts, synthesis_and_mos.md
§1.5: "the checkpoint kept is the one with the best ID validation accuracy, ties go to the
later epoch"): whenever ID accuracy is measured in the last stage, a model at least as good as
the best so far is saved to ``best_model.pt`` (``best_model.json`` records its epoch and
accuracy, so a resumed run continues the comparison); at the end the final ``model.pt`` is
that model. Accuracy is measured on the benchmark's ID validation split when it has one
(``id_val``), else on the ID test set, and ``train_summary.json`` / the evaluation's results
say which.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from oodlab.io import atomic_torch_save, atomic_write_json, safe_torch_load

BEST_WEIGHTS, BEST_INFO = "best_model.pt", "best_model.json"


def accuracy_set(benchmark: Any) -> tuple[Any, str]:
    """The ID set accuracy is measured on for checkpoint selection, and its name."""
    id_val = getattr(benchmark, "id_val", None)
    if id_val is not None:
        return id_val, "ID validation split"
    return benchmark.test, "ID test set (the benchmark has no ID validation split)"


class BestKeeper:
    """Keeps the weights of the best ID accuracy seen (ties: the later epoch)."""

    def __init__(self, run_dir: Path, measured_on: str) -> None:
        self.run_dir, self.measured_on = run_dir, measured_on
        info = run_dir / BEST_INFO
        self.best: dict[str, Any] | None = json.loads(info.read_text()) if info.is_file() else None

    def offer(self, model: nn.Module, accuracy: float, stage: str, epoch: int) -> bool:
        """Save ``model`` if ``accuracy`` is at least the best so far; True when saved."""
        if not math.isfinite(accuracy):
            return False
        if self.best is not None and accuracy < float(self.best["id_accuracy"]):
            return False
        atomic_torch_save(self.run_dir / BEST_WEIGHTS, model.state_dict())
        self.best = {"id_accuracy": accuracy, "stage": stage, "epoch": epoch,
                     "measured_on": self.measured_on}  # fmt: skip
        atomic_write_json(self.run_dir / BEST_INFO, self.best)
        return True

    def restore(self, model: nn.Module) -> dict[str, Any]:
        """Load the best weights into ``model``; the record of what was kept."""
        if self.best is None:
            return {"rule": "best_val_acc", "fallback": "no accuracy was measured: last epoch"}
        model.load_state_dict(safe_torch_load(self.run_dir / BEST_WEIGHTS))
        return {"rule": "best_val_acc", **self.best}


def kept_checkpoint(run_dir: Path) -> dict[str, Any]:
    """What a finished run kept as ``model.pt`` (from ``train_summary.json``)."""
    summary = run_dir / "train_summary.json"
    if summary.is_file():
        kept = json.loads(summary.read_text()).get("kept")
        if isinstance(kept, dict):
            return kept
    return {"rule": "last"}


def describe(kept: dict[str, Any]) -> str:
    """One line for results: which checkpoint was evaluated."""
    if kept.get("rule") != "best_val_acc":
        return "the last epoch's weights (train.keep: last)"
    if "epoch" not in kept:
        return f"the last epoch's weights ({kept.get('fallback', 'best_val_acc unavailable')})"
    return (
        f"the best ID accuracy checkpoint (train.keep: best_val_acc): stage {kept['stage']} "
        f"epoch {kept['epoch']}, {100 * float(kept['id_accuracy']):.2f}% on the "
        f"{kept['measured_on']}"
    )
