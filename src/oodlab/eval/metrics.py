"""OOD-detection metrics and ID accuracy by shot group.

Conventions (DESIGN.md §4): OOD is the positive class and every score is *higher = more
OOD*. Every function takes the ID and the OOD scores as two 1-D arrays (numpy arrays,
sequences or torch tensors, on any device and of any floating dtype; they are read as
float64 numpy arrays) and returns a fraction in [0, 1].

* :func:`auroc`: area under the ROC curve.
* :func:`aupr_out` (OOD positive) and :func:`aupr_in` (ID positive, score negated): area
  under the precision-recall curve, by average precision (``method="ap"``, the PASCL /
  ImOOD / PATT code) or by the trapezoid rule (``method="trapezoid"``, OpenOOD and
  pytorch-ood).
* :func:`fpr95`: fraction of ID flagged as OOD when 95% of OOD is flagged. ``rule="first"``
  reads the first ROC point reaching 95% (OpenOOD ``FPR@95``, pytorch-ood ``FPR95TPR``);
  ``rule="closest"`` reproduces the PASCL / ImOOD / PATT code (Hendrycks' Outlier Exposure
  ``fpr_and_fdr_at_recall``), which reads the threshold whose OOD recall is closest to 95%.
  :func:`fpr_at_tpr` is the same at any recall level.
* :func:`fpr95_id`: fraction of OOD accepted as ID when 95% of ID is accepted (ODIN,
  Energy, MOS, KNN). It is a different number from :func:`fpr95`; never report either as a
  bare "FPR95".
* :func:`ood_metrics`: all of the above for one (ID, OOD) pair.

The FPR functions live in :mod:`oodlab.eval.fpr`, the accuracies in
:mod:`oodlab.eval.accuracy`, the input checks in :mod:`oodlab.eval._arrays`; this module
re-exports them, so ``from oodlab.eval.metrics import fpr95`` keeps working.
* :func:`accuracy`, :func:`per_class_accuracy`, :func:`shot_groups`, :func:`shot_accuracy`:
  top-1 accuracy, overall and by many / medium / few-shot class group (long-tailed ID).

Degenerate input (an empty set, NaN or infinite scores, a non-1-D array, predictions and
labels of different lengths, labels outside the classes, non-positive class counts) raises
:class:`oodlab.errors.DataError`; an unknown ``method`` / ``rule`` or a recall level outside
(0, 1] raises :class:`oodlab.errors.ConfigError`.
"""

from __future__ import annotations

from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from oodlab.eval._arrays import AuprMethod, Scores, _check_method, _FloatArray, _labelled, _pair
from oodlab.eval.accuracy import accuracy, per_class_accuracy, shot_accuracy, shot_groups
from oodlab.eval.fpr import _fpr_closest, _fpr_first, fpr95, fpr95_id, fpr_at_tpr, threshold_at_tpr

__all__ = [
    "accuracy",
    "aupr_in",
    "aupr_out",
    "auroc",
    "fpr95",
    "fpr95_id",
    "fpr_at_tpr",
    "ood_metrics",
    "per_class_accuracy",
    "shot_accuracy",
    "shot_groups",
    "threshold_at_tpr",
]

# --------------------------------------------------------------------------- curve kernels


def _aupr(labels: _FloatArray, scores: _FloatArray, method: AuprMethod) -> float:
    """Area under the PR curve of the class labelled 1, ranking by ``scores`` (higher first)."""
    if method == "ap":
        return float(average_precision_score(labels, scores))
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(auc(recall, precision))


# --------------------------------------------------------------------------- OOD metrics


def auroc(id_scores: Scores, ood_scores: Scores) -> float:
    """Area under the ROC curve, OOD positive (higher = better separation; 0.5 = chance).

    Equals the probability that a random OOD sample scores higher than a random ID sample,
    ties counting one half (the Mann–Whitney U statistic over ``N_id · N_ood``). It does not
    depend on which class is called positive.

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.

    Returns:
        The AUROC in [0, 1].

    Raises:
        DataError: an empty, non-1-D or non-finite score array.

    References:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
        Examples in Neural Networks", ICLR 2017, arXiv:1610.02136, §2 (AUROC as the
        threshold-free OOD metric). Computed with ``sklearn.metrics.roc_auc_score``, as in
        the PASCL / ImOOD / PATT code (long_tailed.md §4.6); OpenOOD's trapezoid area
        under ``roc_curve`` is the same number.
    """
    id_array, ood_array = _pair(id_scores, ood_scores)
    scores, labels = _labelled(id_array, ood_array)
    return float(roc_auc_score(labels, scores))


def aupr_out(id_scores: Scores, ood_scores: Scores, method: AuprMethod = "ap") -> float:
    """Area under the precision-recall curve with OOD as the positive class (higher = better).

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.
        method: ``"ap"``: average precision, ``Σ_k (R_k − R_{k−1}) P_k`` over the distinct
            thresholds (``sklearn.metrics.average_precision_score``; PASCL's "AUPR", ImOOD,
            PATT); ``"trapezoid"``: trapezoid rule on ``precision_recall_curve``
            (``auc(recall, precision)``; OpenOOD ``AUPR_OUT``, pytorch-ood ``AUPR-OUT``).

    Returns:
        The AUPR-out in [0, 1]; its chance level is ``N_ood / (N_id + N_ood)``.

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
        ConfigError: an unknown ``method``.

    Notes:
        The two methods differ, most on tied scores (peers.md §2.3, §3.4): the trapezoid
        rule interpolates linearly between PR points, which Davis & Goadrich (ICML 2006,
        "The Relationship Between Precision-Recall and ROC Curves", §4) show is not the
        achievable curve; average precision uses steps. Compare a number only with numbers
        of the same method.

    References:
        Hendrycks, Mazeika & Dietterich, "Deep Anomaly Detection with Outlier Exposure",
        ICLR 2019, arXiv:1812.04606, §4.2 (AUPR with anomalies positive).
    """
    _check_method(method)
    id_array, ood_array = _pair(id_scores, ood_scores)
    scores, labels = _labelled(id_array, ood_array)
    return _aupr(labels, scores, method)


def aupr_in(id_scores: Scores, ood_scores: Scores, method: AuprMethod = "ap") -> float:
    """Area under the precision-recall curve with ID as the positive class (higher = better).

    The ranking is by the negated score (most ID-like first). ``method`` as in
    :func:`aupr_out`: ``"ap"`` is PATT's ``average_precision_score(1 − labels, −scores)``,
    ``"trapezoid"`` is OpenOOD's ``AUPR_IN``.

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.
        method: ``"ap"`` (average precision) or ``"trapezoid"`` (trapezoid rule).

    Returns:
        The AUPR-in in [0, 1]; its chance level is ``N_id / (N_id + N_ood)``.

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
        ConfigError: an unknown ``method``.

    References:
        Hendrycks & Gimpel, ICLR 2017, arXiv:1610.02136, §2 (AUPR-In / AUPR-Out);
        Zhang et al., "OpenOOD v1.5: Enhanced Benchmark for Out-of-Distribution Detection",
        arXiv:2306.09301 (``compute_all_metrics``; peers.md §2.3).
    """
    _check_method(method)
    id_array, ood_array = _pair(id_scores, ood_scores)
    scores, labels = _labelled(id_array, ood_array)
    return _aupr(1.0 - labels, -scores, method)


def ood_metrics(id_scores: Scores, ood_scores: Scores) -> dict[str, float]:
    """Every OOD metric of one (ID, OOD) pair, as fractions in [0, 1].

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.

    Returns:
        ``auroc``; ``aupr_in`` and ``aupr_out`` (average precision) with their trapezoid
        counterparts ``aupr_in_trapz`` and ``aupr_out_trapz`` (OpenOOD parity); ``fpr95``
        (ID flagged at 95% OOD flagged, first ROC point; OpenOOD), ``fpr95_closest`` (the
        same by the PASCL / ImOOD / PATT closest-recall rule), and ``fpr95_id`` (OOD
        accepted at 95% ID accepted; ODIN / Energy).

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
    """
    id_array, ood_array = _pair(id_scores, ood_scores)
    scores, labels = _labelled(id_array, ood_array)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr_in": _aupr(1.0 - labels, -scores, "ap"),
        "aupr_out": _aupr(labels, scores, "ap"),
        "aupr_in_trapz": _aupr(1.0 - labels, -scores, "trapezoid"),
        "aupr_out_trapz": _aupr(labels, scores, "trapezoid"),
        "fpr95": _fpr_first(labels, scores, 0.95),
        "fpr95_id": _fpr_first(1.0 - labels, -scores, 0.95),
        "fpr95_closest": _fpr_closest(id_array, ood_array, 0.95),
    }
