"""What ``evaluate`` returns: per-score metrics, the model's ID accuracy, and the metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from oodlab.eval import metrics

CONVENTIONS = {
    "ood_positive": "OOD is the positive class; every score is higher = more OOD",
    "auroc": "area under the ROC curve (OOD positive)",
    "aupr_in": "average precision with ID positive (score negated); *_trapz = trapezoid rule",
    "aupr_out": "average precision with OOD positive; *_trapz = trapezoid rule (OpenOOD)",
    "fpr95": "fraction of ID flagged as OOD when 95% of OOD is flagged "
    "(PASCL / ImOOD / PATT / OpenOOD convention; first ROC point with TPR >= 0.95)",
    "fpr95_closest": "as fpr95, at the threshold whose OOD recall is closest to 95% "
    "(the PASCL / ImOOD / PATT code, for exact paper parity)",
    "fpr95_id": "fraction of OOD accepted when 95% of ID is accepted "
    "(ODIN / Energy / MOS / KNN convention)",
    "near / far / all": "unweighted means of the per-set metrics",
}


@dataclass
class ScoreResult:
    """Metrics of one score: per OOD set and the near / far / all means."""

    name: str
    params: dict[str, Any]
    per_set: dict[str, dict[str, float]]
    means: dict[str, dict[str, float]]
    needs_network: bool
    tuning: dict[str, Any] | None = None
    seconds: float = 0.0
    accuracy: dict[str, Any] | None = None
    note: str | None = None
    intervals: dict[str, Any] | None = None


@dataclass
class EvalResult:
    """Everything ``evaluate`` computed; ``raw`` holds the per-sample scores for plots."""

    scores: dict[str, ScoreResult]
    id_accuracy: float
    shot_accuracy: dict[str, float] | None
    near: tuple[str, ...]
    far: tuple[str, ...]
    meta: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    omitted: dict[str, str] = field(default_factory=dict)
    raw: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    per_class_flagged: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    classes: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __repr__(self) -> str:
        from oodlab.eval.frame import short_repr

        return short_repr(self)

    def to_frame(self) -> Any:
        """A pandas DataFrame indexed by (score, set) with one column per metric."""
        from oodlab.eval.frame import to_frame

        return to_frame(self)

    def to_markdown(self) -> str:
        """The markdown summary and per-set tables of ``results.md``, in percent."""
        from oodlab.eval.report import results_markdown

        return results_markdown(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "conventions": CONVENTIONS,
            "id_accuracy": self.id_accuracy,
            "shot_accuracy": self.shot_accuracy,
            "near": list(self.near),
            "far": list(self.far),
            "scores": {
                name: {
                    "params": _jsonable(r.params),
                    "needs_network": r.needs_network,
                    "tuning": _jsonable(r.tuning),
                    "seconds": r.seconds,
                    "per_set": r.per_set,
                    "means": r.means,
                    **({"accuracy": r.accuracy} if r.accuracy is not None else {}),
                    **({"note": r.note} if r.note else {}),
                    **({"intervals": r.intervals} if r.intervals is not None else {}),
                }
                for name, r in self.scores.items()
            },
            "skipped": self.skipped,
            "omitted": self.omitted,
            "per_class_flagged": {k: v.tolist() for k, v in self.per_class_flagged.items()},
            "classes": self.classes,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist() if value.numel() <= 64 else f"tensor{tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


def _flagged_per_class(
    raw: Mapping[str, Mapping[str, np.ndarray]], labels: np.ndarray, num_classes: int
) -> dict[str, np.ndarray]:
    """Per score, the fraction of each ID class flagged as OOD at the fpr95 threshold.

    The threshold is the one flagging 95% of the pooled OOD samples (the ``fpr95``
    convention), so the per-class fractions average to that score's pooled FPR.
    """
    flagged = {}
    for name, sets in raw.items():
        pooled = np.concatenate([v for k, v in sets.items() if k != "id"])
        threshold = metrics.threshold_at_tpr(pooled)
        is_flagged = sets["id"] >= threshold
        flagged[name] = np.array(
            [
                is_flagged[labels == c].mean() if np.any(labels == c) else np.nan
                for c in range(num_classes)
            ]
        )
    return flagged
