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
* :func:`accuracy`, :func:`per_class_accuracy`, :func:`shot_groups`, :func:`shot_accuracy`:
  top-1 accuracy, overall and by many / medium / few-shot class group (long-tailed ID).

Degenerate input (an empty set, NaN or infinite scores, a non-1-D array, predictions and
labels of different lengths, labels outside the classes, non-positive class counts) raises
:class:`oodlab.errors.DataError`; an unknown ``method`` / ``rule`` or a recall level outside
(0, 1] raises :class:`oodlab.errors.ConfigError`.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from oodlab.errors import ConfigError, DataError
from oodlab.eval._arrays import AuprMethod, FprRule, Scores, _FloatArray, _to_numpy
from oodlab.eval.accuracy import accuracy, per_class_accuracy, shot_accuracy, shot_groups

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

# --------------------------------------------------------------------------- input checks


def _scores(values: Scores, name: str) -> _FloatArray:
    """``values`` as a finite, non-empty, 1-D float64 array; ``name`` goes into the message."""
    raw = _to_numpy(values)
    if raw.ndim != 1:
        raise DataError(
            f"{name} must be a 1-D array with one score per sample, got shape {raw.shape}; "
            "flatten or squeeze the score tensor"
        )
    if raw.size == 0:
        raise DataError(
            f"{name} is empty; every OOD metric needs at least one ID and one OOD score"
        )
    try:
        array = raw.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be numbers, got dtype {raw.dtype}") from error
    finite = np.isfinite(array)
    if not finite.all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise DataError(
            f"{name} hold {n_nan} NaN and {n_inf} infinite values among {array.size} scores; "
            "check the model outputs and the score's hyper-parameters (e.g. a temperature of 0)"
        )
    return array


def _pair(id_scores: Scores, ood_scores: Scores) -> tuple[_FloatArray, _FloatArray]:
    return _scores(id_scores, "ID scores"), _scores(ood_scores, "OOD scores")


def _labelled(id_array: _FloatArray, ood_array: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
    """Pooled scores and labels, 1 = OOD (the positive class), 0 = ID."""
    labels = np.concatenate([np.zeros(id_array.size), np.ones(ood_array.size)])
    return np.concatenate([id_array, ood_array]), labels


def _check_method(method: str) -> None:
    if method not in ("ap", "trapezoid"):
        raise ConfigError(f"AUPR method must be 'ap' or 'trapezoid', got {method!r}")


def _check_rule(rule: str) -> None:
    if rule not in ("first", "closest"):
        raise ConfigError(f"FPR rule must be 'first' or 'closest', got {rule!r}")


def _check_tpr(tpr: float) -> None:
    if not 0.0 < tpr <= 1.0:
        raise ConfigError(f"tpr must be a recall level in (0, 1], got {tpr!r}; e.g. 0.95")


# --------------------------------------------------------------------------- curve kernels


def _aupr(labels: _FloatArray, scores: _FloatArray, method: AuprMethod) -> float:
    """Area under the PR curve of the class labelled 1, ranking by ``scores`` (higher first)."""
    if method == "ap":
        return float(average_precision_score(labels, scores))
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(auc(recall, precision))


def _fpr_first(labels: _FloatArray, scores: _FloatArray, tpr: float) -> float:
    """FPR at the first ROC point (thresholds from high to low) whose TPR reaches ``tpr``.

    ``drop_intermediate=False`` keeps every distinct threshold: scikit-learn's default drops
    points in the middle of straight runs of equal steps, and on a diagonal run (each
    distinct value shared by one positive and one negative) that can skip the first point
    reaching ``tpr`` and return a larger FPR.
    """
    fpr_curve, tpr_curve, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr_curve[int(np.argmax(tpr_curve >= tpr))])


def _fpr_closest(id_array: _FloatArray, ood_array: _FloatArray, tpr: float) -> float:
    """FPR at the threshold whose OOD recall is closest to ``tpr`` (long_tailed.md §4.6).

    Written from the description of Hendrycks' ``fpr_and_fdr_at_recall``:

    1. sort the pooled scores in descending order (stable) and keep, for each distinct
       value, the position of its last occurrence: one threshold ``score ≥ value`` each;
    2. cumulative OOD (true positive) and ID (false positive) counts at those thresholds;
    3. keep the thresholds from the highest one up to the first reaching full recall
       (lower ones only add ID), order them from that full-recall one upwards, and append
       a (recall 1, 0 false positives) point;
    4. take the first minimiser of ``|recall − tpr|`` in that order.

    Ties therefore go to the higher recall, and among thresholds of equal recall to the
    lowest of them (the most ID flagged). The appended point never wins, because the first
    point of the order already has recall 1. The distances are compared in float64 as in
    the reference code; two recalls at exactly equal distance (e.g. 0.25 and 0.75 from
    0.5) resolve to the higher one.
    """
    scores, labels = _labelled(id_array, ood_array)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Within a run of equal values the order does not matter: only run ends are read.
    run_ends = np.append(np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]), scores.size - 1)
    true_pos = np.cumsum(sorted_labels)[run_ends]
    false_pos = (run_ends + 1) - true_pos
    recall = true_pos / true_pos[-1]
    first_full = int(np.argmax(true_pos == true_pos[-1]))
    recall_up = np.append(recall[first_full::-1], 1.0)
    false_pos_up = np.append(false_pos[first_full::-1], 0.0)
    pick = int(np.argmin(np.abs(recall_up - tpr)))
    return float(false_pos_up[pick] / id_array.size)


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


def fpr_at_tpr(
    id_scores: Scores, ood_scores: Scores, tpr: float = 0.95, rule: FprRule = "first"
) -> float:
    """Fraction of ID flagged as OOD (score ≥ threshold) when a fraction ``tpr`` of OOD is.

    Lower is better. The flagging rule is ``score ≥ t`` for ``t`` among the distinct pooled
    score values.

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.
        tpr: the OOD recall (true-positive rate, OOD positive) in (0, 1].
        rule: ``"first"``: the highest threshold flagging at least ``tpr`` of OOD, i.e. the
            first ROC point with TPR ≥ ``tpr`` (OpenOOD, pytorch-ood), which is also the
            lowest FPR among thresholds reaching that recall; ``"closest"``: the threshold
            whose OOD recall is closest to ``tpr``, which may fall short of it (PASCL /
            ImOOD / PATT; see Notes).

    Returns:
        The false-positive rate in [0, 1].

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
        ConfigError: ``tpr`` outside (0, 1] or an unknown ``rule``.

    Notes:
        ``"closest"`` follows long_tailed.md §4.6 (Hendrycks' ``fpr_and_fdr_at_recall``,
        reused unchanged by PASCL, ImOOD and PATT): among thresholds from the highest one
        down to the first reaching full recall, the first minimiser of
        ``|recall − tpr|`` scanning from the full-recall one upwards. Ties go to the
        higher recall, then to the lower threshold (the larger FPR). The two rules read
        recalls at most one OOD sample apart, but not the same FPR: when ``tpr · N_ood``
        is a whole number both reach exactly that recall, on a flat stretch of the ROC
        curve spanning every ID score between two consecutive OOD scores, and "first"
        reads its low-FPR end while "closest" reads its high-FPR end. On 400 vs 300
        overlapping Gaussian scores that is 5 points of FPR95 (tests/eval/test_metrics.py).
        ``"first"`` keeps every ROC point (``drop_intermediate=False``); OpenOOD calls
        ``roc_curve`` with scikit-learn's default, which can skip the first point inside
        a run of identical (ID, OOD) steps and so report a larger FPR on heavily tied
        scores.

    References:
        Zhang et al., OpenOOD v1.5, arXiv:2306.09301 (``FPR@95``); Hendrycks, Mazeika &
        Dietterich, ICLR 2019, arXiv:1812.04606 (``fpr_and_fdr_at_recall``); Wang et al.,
        "Partial and Asymmetric Contrastive Learning for Out-of-Distribution Detection in
        Long-Tailed Recognition", ICML 2022, arXiv:2207.01160, §5 (FPR95 with OOD as
        positive).
    """
    _check_tpr(tpr)
    _check_rule(rule)
    id_array, ood_array = _pair(id_scores, ood_scores)
    if rule == "closest":
        return _fpr_closest(id_array, ood_array, tpr)
    scores, labels = _labelled(id_array, ood_array)
    return _fpr_first(labels, scores, tpr)


def fpr95(
    id_scores: Scores, ood_scores: Scores, tpr: float = 0.95, rule: FprRule = "first"
) -> float:
    """Fraction of ID flagged as OOD when 95% of OOD is flagged (lower = better).

    The FPR95 of PASCL / ImOOD / PATT and OpenOOD: OOD is the positive class, so this is
    the ID false-positive rate at 95% OOD recall. See :func:`fpr_at_tpr` for the
    arguments, the two rules and the references; :func:`fpr95_id` is the other FPR95.

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.
        tpr: the OOD recall, 0.95 by default.
        rule: ``"first"`` (OpenOOD, pytorch-ood) or ``"closest"`` (PASCL / ImOOD / PATT).

    Returns:
        The false-positive rate in [0, 1].

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
        ConfigError: ``tpr`` outside (0, 1] or an unknown ``rule``.
    """
    return fpr_at_tpr(id_scores, ood_scores, tpr, rule)


def fpr95_id(id_scores: Scores, ood_scores: Scores, tpr: float = 0.95) -> float:
    """Fraction of OOD accepted as ID (score ≤ threshold) when ``tpr`` of ID is accepted.

    Lower is better. ID is the positive class and the score is negated; the threshold is
    the lowest one accepting at least ``tpr`` of ID (the first ROC point with TPR ≥
    ``tpr``), which is also the lowest OOD acceptance among such thresholds.

    Args:
        id_scores: ``(N_id,)`` scores of the ID test samples, higher = more OOD.
        ood_scores: ``(N_ood,)`` scores of the OOD test samples.
        tpr: the ID recall, 0.95 by default.

    Returns:
        The fraction of OOD accepted, in [0, 1].

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
        ConfigError: ``tpr`` outside (0, 1].

    References:
        Liang, Li & Srikant, "Enhancing the Reliability of Out-of-Distribution Image
        Detection in Neural Networks" (ODIN), ICLR 2018, arXiv:1706.02690, §4.2 ("FPR at
        95% TPR", ID positive); Liu et al., "Energy-based Out-of-distribution Detection",
        NeurIPS 2020, arXiv:2010.03759, §4.1. The convention of MOS (arXiv:2105.01879) and
        KNN (arXiv:2204.06507) as well.
    """
    _check_tpr(tpr)
    id_array, ood_array = _pair(id_scores, ood_scores)
    scores, labels = _labelled(id_array, ood_array)
    return _fpr_first(1.0 - labels, -scores, tpr)


def threshold_at_tpr(ood_scores: Scores, tpr: float = 0.95) -> float:
    """The threshold of :func:`fpr_at_tpr` with ``rule="first"``: flag ``score ≥`` it.

    The highest score value ``t`` with at least a fraction ``tpr`` of OOD scoring ``≥ t``;
    it depends on the OOD scores alone. ``mean(id_scores >= threshold_at_tpr(ood))``
    equals ``fpr_at_tpr(id, ood)``, so a caller can split that FPR by ID class.

    Args:
        ood_scores: ``(N_ood,)`` scores of the OOD test samples, higher = more OOD.
        tpr: the OOD recall in (0, 1], 0.95 by default.

    Returns:
        The threshold, one of the OOD scores.

    Raises:
        DataError: an empty, non-1-D or non-finite score array.
        ConfigError: ``tpr`` outside (0, 1].
    """
    _check_tpr(tpr)
    ood_array = _scores(ood_scores, "OOD scores")
    descending = np.sort(ood_array)[::-1]
    # flagged[k] = fraction of OOD with score ≥ descending[k], counting ties in full.
    flagged = np.searchsorted(-descending, -descending, side="right") / ood_array.size
    return float(descending[int(np.argmax(flagged >= tpr))])


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
