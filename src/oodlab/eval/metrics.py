"""OOD metrics (OOD = positive class, scores higher = more OOD) and ID accuracy by shot group.

Names follow DESIGN.md §4:

* ``auroc``;
* ``aupr_out`` (OOD positive) and ``aupr_in`` (ID positive, score negated), by average
  precision (the PASCL / ImOOD / PATT code) or by the trapezoid rule (OpenOOD, pytorch-ood);
* ``fpr95``: fraction of ID flagged as OOD when 95% of OOD is flagged, at the first ROC
  point reaching that recall (OpenOOD ``FPR@95``, pytorch-ood ``FPR95TPR``); the
  ``"closest"`` rule reproduces the PASCL / ImOOD / PATT code, which takes the threshold
  whose OOD recall is closest to 95% (long_tailed.md §4.6);
* ``fpr95_id``: fraction of OOD accepted when 95% of ID is accepted (ODIN, Energy, MOS, KNN);
* ID accuracy and many / medium / few-shot accuracy (long_tailed.md §4.7).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from oodlab.errors import DataError

Array = NDArray[np.float64]


def _as_scores(values: ArrayLike | torch.Tensor, name: str) -> Array:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of scores, got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{name} is empty; every metric needs at least one ID and one OOD score")
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError(
            f"{name} holds {int(bad.sum())} NaN or infinite scores of {array.size}; "
            "check the model outputs or the score's hyper-parameters"
        )
    return array


def _labelled(
    id_scores: ArrayLike | torch.Tensor, ood_scores: ArrayLike | torch.Tensor
) -> tuple[Array, Array]:
    """Concatenated scores and labels (1 = OOD)."""
    id_array = _as_scores(id_scores, "ID scores")
    ood_array = _as_scores(ood_scores, "OOD scores")
    labels = np.r_[np.zeros(id_array.size), np.ones(ood_array.size)]
    return np.r_[id_array, ood_array], labels


def auroc(id_scores: ArrayLike | torch.Tensor, ood_scores: ArrayLike | torch.Tensor) -> float:
    """Area under the ROC curve with OOD as the positive class (ties count one half)."""
    scores, labels = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def _aupr(labels: Array, scores: Array, method: Literal["ap", "trapezoid"]) -> float:
    if method == "ap":
        return float(average_precision_score(labels, scores))
    if method == "trapezoid":
        precision, recall, _ = precision_recall_curve(labels, scores)
        return float(auc(recall, precision))
    raise DataError(f"AUPR method must be 'ap' or 'trapezoid', got {method!r}")


def aupr_out(
    id_scores: ArrayLike | torch.Tensor,
    ood_scores: ArrayLike | torch.Tensor,
    method: Literal["ap", "trapezoid"] = "ap",
) -> float:
    """Area under the precision-recall curve with OOD as the positive class."""
    scores, labels = _labelled(id_scores, ood_scores)
    return _aupr(labels, scores, method)


def aupr_in(
    id_scores: ArrayLike | torch.Tensor,
    ood_scores: ArrayLike | torch.Tensor,
    method: Literal["ap", "trapezoid"] = "ap",
) -> float:
    """Area under the precision-recall curve with ID as the positive class (score negated)."""
    scores, labels = _labelled(id_scores, ood_scores)
    return _aupr(1 - labels, -scores, method)


def _fpr_first(labels: Array, scores: Array, tpr: float) -> float:
    fpr_curve, tpr_curve, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr_curve[np.argmax(tpr_curve >= tpr)])


def _fpr_closest(labels: Array, scores: Array, tpr: float) -> float:
    """The rule of the PASCL / ImOOD / PATT code (Hendrycks' OE ``fpr_and_fdr_at_recall``).

    Thresholds are the distinct score values in descending order; the curve is read from
    the first threshold reaching full recall backwards, with a (recall 1, 0 false positives)
    point appended, and the first point whose recall is closest to ``tpr`` is taken.
    """
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_labels.size - 1]
    true_pos = np.cumsum(sorted_labels)[last_of_value]
    false_pos = 1 + last_of_value - true_pos
    recall = true_pos / true_pos[-1]
    first_full = int(np.searchsorted(true_pos, true_pos[-1]))
    backwards = slice(first_full, None, -1)
    recall = np.r_[recall[backwards], 1.0]
    false_pos = np.r_[false_pos[backwards], 0.0]
    return float(false_pos[np.argmin(np.abs(recall - tpr))] / np.sum(labels == 0))


def fpr_at_tpr(
    id_scores: ArrayLike | torch.Tensor,
    ood_scores: ArrayLike | torch.Tensor,
    tpr: float = 0.95,
    rule: Literal["first", "closest"] = "first",
) -> float:
    """Fraction of ID flagged as OOD when a fraction ``tpr`` of OOD is flagged.

    Args:
        id_scores: ``(N_id,)`` scores of ID samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of OOD samples.
        tpr: the OOD recall at which the false-positive rate is read.
        rule: ``"first"``: the first ROC point with TPR ≥ ``tpr`` (OpenOOD, pytorch-ood);
            ``"closest"``: the threshold whose TPR is closest to ``tpr`` (PASCL / ImOOD / PATT).
    """
    if not 0 < tpr <= 1:
        raise DataError(f"tpr must be in (0, 1], got {tpr}")
    scores, labels = _labelled(id_scores, ood_scores)
    if rule == "first":
        return _fpr_first(labels, scores, tpr)
    if rule == "closest":
        return _fpr_closest(labels, scores, tpr)
    raise DataError(f"rule must be 'first' or 'closest', got {rule!r}")


def fpr95(
    id_scores: ArrayLike | torch.Tensor,
    ood_scores: ArrayLike | torch.Tensor,
    rule: Literal["first", "closest"] = "first",
) -> float:
    """Fraction of ID flagged as OOD when 95% of OOD is flagged (see :func:`fpr_at_tpr`)."""
    return fpr_at_tpr(id_scores, ood_scores, 0.95, rule)


def fpr95_id(id_scores: ArrayLike | torch.Tensor, ood_scores: ArrayLike | torch.Tensor) -> float:
    """Fraction of OOD accepted as ID when 95% of ID is accepted (ID positive, score negated)."""
    scores, labels = _labelled(id_scores, ood_scores)
    return _fpr_first(1 - labels, -scores, 0.95)


def ood_metrics(
    id_scores: ArrayLike | torch.Tensor, ood_scores: ArrayLike | torch.Tensor
) -> dict[str, float]:
    """Every OOD metric of one (ID, OOD) pair, as fractions in [0, 1]."""
    return {
        "auroc": auroc(id_scores, ood_scores),
        "aupr_in": aupr_in(id_scores, ood_scores),
        "aupr_out": aupr_out(id_scores, ood_scores),
        "aupr_in_trapz": aupr_in(id_scores, ood_scores, "trapezoid"),
        "aupr_out_trapz": aupr_out(id_scores, ood_scores, "trapezoid"),
        "fpr95": fpr95(id_scores, ood_scores),
        "fpr95_closest": fpr95(id_scores, ood_scores, "closest"),
        "fpr95_id": fpr95_id(id_scores, ood_scores),
    }


def _predictions_and_labels(
    predictions: ArrayLike | torch.Tensor, labels: ArrayLike | torch.Tensor
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    preds = np.asarray(
        predictions.detach().cpu() if isinstance(predictions, torch.Tensor) else predictions
    )
    target = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if preds.ndim == 2:  # logits
        preds = preds.argmax(axis=1)
    if preds.shape != target.shape or target.ndim != 1:
        raise DataError(
            f"predictions {preds.shape} and labels {target.shape} must be 1-D and of equal length"
        )
    if target.size == 0:
        raise DataError("no labelled ID samples; accuracy needs at least one")
    return preds.astype(np.int64), target.astype(np.int64)


def accuracy(predictions: ArrayLike | torch.Tensor, labels: ArrayLike | torch.Tensor) -> float:
    """Top-1 accuracy; ``predictions`` are class indices ``(N,)`` or logits ``(N, C)``."""
    preds, target = _predictions_and_labels(predictions, labels)
    return float(np.mean(preds == target))


def per_class_accuracy(
    predictions: ArrayLike | torch.Tensor, labels: ArrayLike | torch.Tensor, num_classes: int
) -> Array:
    """Accuracy of each class ``(C,)``; NaN for classes without test samples."""
    preds, target = _predictions_and_labels(predictions, labels)
    correct = np.bincount(target, weights=(preds == target).astype(float), minlength=num_classes)
    total = np.bincount(target, minlength=num_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)[:num_classes]


def shot_groups(class_counts: ArrayLike) -> dict[str, NDArray[np.bool_]]:
    """Boolean class masks ``many``, ``medium``, ``few`` from the training counts (§4.7).

    For ``C ≤ 100`` classes the thresholds are the counts at ranks ``int(0.34·C)`` and
    ``int(0.67·C)`` in descending order (many: more than the first, few: fewer than the
    second); for ``C > 100`` (ImageNet-LT), many: more than 100 images, few: fewer than 20.
    """
    counts = np.asarray(class_counts)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts <= 0):
        raise DataError(f"class_counts must be positive training counts per class, got {counts!r}")
    num_classes = counts.size
    if num_classes > 100:
        many_thr, few_thr = 100, 20
    else:
        descending = np.sort(counts)[::-1]
        many_thr = descending[int(0.34 * num_classes)]
        few_thr = descending[int(0.67 * num_classes)]
    many = counts > many_thr
    few = counts < few_thr
    return {"many": many, "medium": ~(many | few), "few": few}


def shot_accuracy(
    predictions: ArrayLike | torch.Tensor, labels: ArrayLike | torch.Tensor, class_counts: ArrayLike
) -> dict[str, float]:
    """Mean per-class accuracy within the many / medium / few-shot groups (NaN-mean)."""
    groups = shot_groups(class_counts)
    per_class = per_class_accuracy(predictions, labels, len(np.asarray(class_counts)))
    result = {}
    for group, mask in groups.items():
        values = per_class[mask]
        values = values[~np.isnan(values)]
        result[f"{group}_acc"] = float(values.mean()) if values.size else float("nan")
    return result
