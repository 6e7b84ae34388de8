"""ID accuracy: top-1, per class, and by many / medium / few-shot class group (long-tailed ID).

Shot groups follow the PASCL / ImOOD / PATT code (long_tailed.md §4.7): for ``C ≤ 100``
classes the thresholds are the training counts at ranks ``int(0.34·C)`` and ``int(0.67·C)``;
for more classes, many = more than 100 images, few = fewer than 20.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from oodlab.errors import DataError
from oodlab.eval._arrays import Scores, _BoolArray, _FloatArray, _IntArray, _to_numpy


def _class_indices(values: NDArray[np.generic], name: str) -> _IntArray:
    if values.dtype == np.bool_ or not (
        np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
    ):
        raise DataError(f"{name} must be integer class indices, got dtype {values.dtype}")
    if np.issubdtype(values.dtype, np.floating):
        as_float = values.astype(np.float64)
        if not np.array_equal(as_float, np.round(as_float)):
            raise DataError(f"{name} must be integer class indices, got non-integer values")
    return values.astype(np.int64)


def _predictions_and_labels(
    predictions: Scores, labels: Scores, num_classes: int | None = None
) -> tuple[_IntArray, _IntArray]:
    """Predicted and true class indices, both ``(N,)``, checked against each other."""
    preds = _to_numpy(predictions)
    target = _to_numpy(labels)
    if target.ndim != 1:
        raise DataError(f"labels must be a 1-D array of class indices, got shape {target.shape}")
    if target.size == 0:
        raise DataError("labels are empty; accuracy needs at least one labelled ID sample")
    if preds.ndim == 2:  # logits (N, C)
        if preds.shape[1] == 0:
            raise DataError(f"logits must have at least one class column, got shape {preds.shape}")
        if not np.all(np.isfinite(preds.astype(np.float64))):
            bad = int((~np.isfinite(preds.astype(np.float64))).any(axis=1).sum())
            raise DataError(f"logits hold NaN or infinite values in {bad} of {len(preds)} rows")
        if num_classes is not None and preds.shape[1] != num_classes:
            raise DataError(
                f"logits have {preds.shape[1]} columns but there are {num_classes} classes"
            )
        preds = preds.argmax(axis=1)
    elif preds.ndim != 1:
        raise DataError(
            f"predictions must be class indices (N,) or logits (N, C), got shape {preds.shape}"
        )
    if preds.shape[0] != target.shape[0]:
        raise DataError(
            f"{preds.shape[0]} predictions but {target.shape[0]} labels; "
            "they must be of equal length, one per ID sample"
        )
    pred_idx = _class_indices(preds, "predictions")
    label_idx = _class_indices(target, "labels")
    if num_classes is not None:
        outside = (label_idx < 0) | (label_idx >= num_classes)
        if outside.any():
            raise DataError(
                f"{int(outside.sum())} labels lie outside the {num_classes} classes "
                f"[0, {num_classes - 1}] (e.g. {int(label_idx[outside][0])}); "
                "pass the ID labels only, with the right class count"
            )
    return pred_idx, label_idx


def accuracy(predictions: Scores, labels: Scores) -> float:
    """Top-1 accuracy on the ID test set (higher = better).

    Args:
        predictions: predicted class indices ``(N,)`` or logits ``(N, C)`` (argmax taken).
        labels: true class indices ``(N,)``.

    Returns:
        The fraction of samples whose prediction equals the label.

    Raises:
        DataError: empty labels, mismatched lengths, non-integer indices, non-finite logits.
    """
    preds, target = _predictions_and_labels(predictions, labels)
    return float(np.mean(preds == target))


def per_class_accuracy(predictions: Scores, labels: Scores, num_classes: int) -> _FloatArray:
    """Top-1 accuracy of each class, ``(num_classes,)``; NaN for classes with no test sample.

    Args:
        predictions: predicted class indices ``(N,)`` or logits ``(N, C)``.
        labels: true class indices ``(N,)`` in ``[0, num_classes)``.
        num_classes: the number of ID classes ``C``.

    Returns:
        ``acc[c]`` = fraction of the test samples of class ``c`` predicted as ``c``.

    Raises:
        DataError: as :func:`accuracy`, a label outside ``[0, num_classes)``, or a
            non-positive ``num_classes``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise DataError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes <= 0:
        raise DataError(f"num_classes must be positive, got {num_classes}")
    preds, target = _predictions_and_labels(predictions, labels, int(num_classes))
    correct = np.bincount(target[preds == target], minlength=num_classes).astype(np.float64)
    total = np.bincount(target, minlength=num_classes).astype(np.float64)
    result = np.full(num_classes, np.nan)
    present = total > 0
    result[present] = correct[present] / total[present]
    return result


def _class_counts(class_counts: Scores) -> _FloatArray:
    raw = _to_numpy(class_counts)
    if raw.ndim != 1 or raw.size == 0:
        raise DataError(
            f"class_counts must be a non-empty 1-D array of training images per class, "
            f"got shape {raw.shape}"
        )
    counts = raw.astype(np.float64)
    bad = ~np.isfinite(counts) | (counts <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"class_counts must be positive and finite, got {int(bad.sum())} bad entries "
            f"(class {first} has {raw[first]}); a class without training images has no shot group"
        )
    return counts


def shot_groups(class_counts: Scores) -> dict[str, _BoolArray]:
    """Boolean class masks ``many``, ``medium``, ``few`` from the training counts per class.

    For ``C ≤ 100`` classes (CIFAR-10/100-LT), with ``n`` the counts sorted in descending
    order, ``many_thr = n[int(0.34·C)]`` and ``few_thr = n[int(0.67·C)]``; a class is
    *many* if its count exceeds ``many_thr``, *few* if it is below ``few_thr``, *medium*
    otherwise. For ``C > 100`` (ImageNet-LT, Places-LT) the fixed cut-offs: many ``> 100``
    images, few ``< 20``.

    Args:
        class_counts: ``(C,)`` training images per class, in any class order.

    Returns:
        ``{"many", "medium", "few"}`` → ``(C,)`` boolean masks partitioning the classes.

    Raises:
        DataError: ``class_counts`` empty, not 1-D, or with a non-positive or non-finite entry.

    Notes:
        The PASCL code indexes the counts in class order, which for CIFAR-LT is already
        descending; sorting first gives the same groups there (C10-LT: many = classes 0–2,
        medium = 3–6, few = 7–9) and makes the rule independent of the class order.

    References:
        long_tailed.md §4.7 (PASCL, ICML 2022, arXiv:2207.01160, and the ImOOD / PATT code
        built on it); Liu et al., "Large-Scale Long-Tailed Recognition in an Open World"
        (OLTR), CVPR 2019, arXiv:1904.05160, §5 (many > 100, few < 20 images).
    """
    counts = _class_counts(class_counts)
    num_classes = counts.size
    if num_classes > 100:
        many_thr, few_thr = 100.0, 20.0
    else:
        descending = np.sort(counts)[::-1]
        many_thr = float(descending[int(0.34 * num_classes)])
        few_thr = float(descending[int(0.67 * num_classes)])
    many = counts > many_thr
    few = counts < few_thr
    return {"many": many, "medium": ~(many | few), "few": few}


def shot_accuracy(predictions: Scores, labels: Scores, class_counts: Scores) -> dict[str, float]:
    """Mean per-class top-1 accuracy within the many / medium / few-shot groups.

    Each group's value is the mean over its classes of :func:`per_class_accuracy`,
    skipping classes without test samples (NaN-mean); NaN if no class of the group has one.

    Args:
        predictions: predicted class indices ``(N,)`` or logits ``(N, C)``.
        labels: true class indices ``(N,)`` in ``[0, C)``.
        class_counts: ``(C,)`` training images per class (see :func:`shot_groups`).

    Returns:
        ``{"many_acc", "medium_acc", "few_acc"}`` → accuracy in [0, 1] or NaN.

    Raises:
        DataError: as :func:`per_class_accuracy` and :func:`shot_groups`.

    References:
        long_tailed.md §4.7; Kang et al., "Decoupling Representation and Classifier for
        Long-Tailed Recognition", ICLR 2020, arXiv:1910.09217, §5 (many / medium / few).
    """
    groups = shot_groups(class_counts)
    per_class = per_class_accuracy(predictions, labels, len(groups["many"]))
    result: dict[str, float] = {}
    for group, mask in groups.items():
        values = per_class[mask & ~np.isnan(per_class)]
        result[f"{group}_acc"] = float(values.mean()) if values.size else float("nan")
    return result
