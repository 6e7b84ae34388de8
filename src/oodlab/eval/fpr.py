"""False-positive rates at a fixed recall: the two FPR95s and the threshold behind them.

* :func:`fpr_at_tpr` / :func:`fpr95`: fraction of ID flagged as OOD when a fraction ``tpr``
  of OOD is flagged (OOD positive), by the first ROC point reaching it (``rule="first"``,
  OpenOOD, pytorch-ood) or the recall closest to it (``rule="closest"``, PASCL / ImOOD /
  PATT, Hendrycks' ``fpr_and_fdr_at_recall``).
* :func:`fpr95_id`: fraction of OOD accepted as ID when 95% of ID is accepted (ODIN,
  Energy, MOS, KNN); a different number from :func:`fpr95`.
* :func:`threshold_at_tpr`: the threshold of ``rule="first"``, from the OOD scores alone.

The conventions (OOD positive, higher = more OOD, inputs, errors) are those of
:mod:`oodlab.eval.metrics`, which re-exports every function here.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from oodlab.eval._arrays import (
    FprRule,
    Scores,
    _check_rule,
    _check_tpr,
    _FloatArray,
    _labelled,
    _pair,
    _scores,
)

__all__ = ["fpr95", "fpr95_id", "fpr_at_tpr", "threshold_at_tpr"]


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
