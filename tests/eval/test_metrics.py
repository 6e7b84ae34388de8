"""Metric values against independent computations: pairwise counting, brute-force threshold
sweeps, scikit-learn called the OpenOOD way, and hand-worked toy examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from oodlab.errors import DataError
from oodlab.eval import metrics

RNG = np.random.default_rng(0)
GAUSS_ID = RNG.normal(0.0, 1.0, 400)
GAUSS_OOD = RNG.normal(1.4, 1.2, 300)
TIED_ID = np.round(GAUSS_ID)
TIED_OOD = np.round(GAUSS_OOD)
CASES = [(GAUSS_ID, GAUSS_OOD), (TIED_ID, TIED_OOD)]


def pairwise_auroc(id_scores, ood_scores):
    """P(OOD score > ID score) + ½ P(equal), by counting all pairs."""
    diff = ood_scores[:, None] - id_scores[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def brute_fpr_at_ood_recall(id_scores, ood_scores, level=0.95):
    """Smallest ID false-positive rate among thresholds flagging ≥ level of OOD (score ≥ t)."""
    best = 1.0
    for t in np.unique(np.r_[id_scores, ood_scores]):
        if np.mean(ood_scores >= t) >= level:
            best = min(best, np.mean(id_scores >= t))
    return best


def brute_ood_kept_at_id_recall(id_scores, ood_scores, level=0.95):
    """Smallest fraction of OOD accepted (score ≤ t) among thresholds accepting ≥ level of ID."""
    best = 1.0
    for t in np.unique(np.r_[id_scores, ood_scores]):
        if np.mean(id_scores <= t) >= level:
            best = min(best, np.mean(ood_scores <= t))
    return best


def brute_closest(id_scores, ood_scores, level=0.95):
    """Over thresholds at distinct values (score ≥ t), the FPR where OOD recall is closest to
    ``level``. The PASCL code reads its curve from low thresholds to high ones and keeps the
    first minimum, so ties go to the higher recall, then to the lower threshold."""
    candidates = []
    for t in np.unique(np.r_[id_scores, ood_scores]):
        recall = np.mean(ood_scores >= t)
        candidates.append((abs(recall - level), -recall, t, np.mean(id_scores >= t)))
    return min(candidates)[3]


@pytest.mark.parametrize(("id_s", "ood_s"), CASES)
def test_auroc_counts_pairs(id_s, ood_s):
    assert metrics.auroc(id_s, ood_s) == pytest.approx(pairwise_auroc(id_s, ood_s))


@pytest.mark.parametrize(("id_s", "ood_s"), CASES)
def test_fprs_match_brute_force_sweeps(id_s, ood_s):
    assert metrics.fpr95(id_s, ood_s) == pytest.approx(brute_fpr_at_ood_recall(id_s, ood_s))
    assert metrics.fpr95_id(id_s, ood_s) == pytest.approx(brute_ood_kept_at_id_recall(id_s, ood_s))
    assert metrics.fpr95(id_s, ood_s, rule="closest") == pytest.approx(brute_closest(id_s, ood_s))


@pytest.mark.parametrize(("id_s", "ood_s"), CASES)
def test_openood_parity(id_s, ood_s):
    """OpenOOD's compute_all_metrics, re-derived from sklearn calls (peers.md §2.3): it
    negates its confidence, so with oodlab's higher = more OOD scores no negation is needed."""
    labels = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
    scores = np.r_[id_s, ood_s]
    fpr, tpr, _ = roc_curve(labels, scores)
    assert metrics.auroc(id_s, ood_s) == pytest.approx(auc(fpr, tpr))
    assert metrics.fpr95(id_s, ood_s) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    precision_in, recall_in, _ = precision_recall_curve(1 - labels, -scores)
    precision_out, recall_out, _ = precision_recall_curve(labels, scores)
    assert metrics.aupr_in(id_s, ood_s, "trapezoid") == pytest.approx(auc(recall_in, precision_in))
    assert metrics.aupr_out(id_s, ood_s, "trapezoid") == pytest.approx(
        auc(recall_out, precision_out)
    )


def test_average_precision_by_hand():
    # ID = [0.1, 0.2, 0.3, 0.4], OOD = [0.35, 0.5, 0.6, 0.7]; ranked by score (OOD positive):
    # 0.7 O, 0.6 O, 0.5 O, 0.4 I, 0.35 O, 0.3 I, 0.2 I, 0.1 I.
    # AP_out = mean precision at each OOD hit = (1 + 1 + 1 + 4/5) / 4 = 0.95.
    id_s, ood_s = [0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7]
    assert metrics.aupr_out(id_s, ood_s) == pytest.approx(0.95)
    # ID positive, ranked by -score: 0.1 I, 0.2 I, 0.3 I, 0.35 O, 0.4 I, ...
    # AP_in = (1 + 1 + 1 + 4/5) / 4 = 0.95 as well (the example is symmetric).
    assert metrics.aupr_in(id_s, ood_s) == pytest.approx(0.95)
    # 15 of the 16 (ID, OOD) pairs are ordered correctly.
    assert metrics.auroc(id_s, ood_s) == pytest.approx(15 / 16)
    # Flagging 95% of OOD needs all 4 (threshold 0.35), which flags ID 0.4: FPR = 1/4.
    assert metrics.fpr95(id_s, ood_s) == pytest.approx(0.25)
    # Accepting 95% of ID needs all 4 (threshold 0.4), which keeps OOD 0.35: 1/4.
    assert metrics.fpr95_id(id_s, ood_s) == pytest.approx(0.25)


def test_perfect_and_reversed_separation():
    id_s, ood_s = np.arange(10.0), np.arange(10.0) + 100
    m = metrics.ood_metrics(id_s, ood_s)
    assert m["auroc"] == 1.0
    assert m["aupr_in"] == pytest.approx(1.0)
    assert m["aupr_out"] == pytest.approx(1.0)
    assert m["fpr95"] == 0.0
    assert m["fpr95_id"] == 0.0
    assert m["fpr95_closest"] == 0.0
    assert metrics.auroc(ood_s, id_s) == 0.0
    assert metrics.fpr95(ood_s, id_s) == 1.0


def test_conventions_differ_where_peers_said_they_would():
    """peers.md §3.4: the two FPR95 conventions differ on overlapping Gaussians, and
    average precision differs from the trapezoid rule on tied scores."""
    assert abs(metrics.fpr95(GAUSS_ID, GAUSS_OOD) - metrics.fpr95_id(GAUSS_ID, GAUSS_OOD)) > 0.02
    ap = metrics.aupr_out(TIED_ID, TIED_OOD)
    trapz = metrics.aupr_out(TIED_ID, TIED_OOD, "trapezoid")
    assert abs(ap - trapz) > 1e-3


def test_tensors_are_accepted():
    id_t, ood_t = torch.tensor(GAUSS_ID), torch.tensor(GAUSS_OOD)
    assert metrics.ood_metrics(id_t, ood_t) == metrics.ood_metrics(GAUSS_ID, GAUSS_OOD)


@pytest.mark.parametrize(
    ("id_s", "ood_s", "match"),
    [
        ([], [1.0], "ID scores is empty"),
        ([1.0], [], "OOD scores is empty"),
        ([1.0, np.nan], [2.0], "1 NaN or infinite"),
        ([1.0], [np.inf, 2.0, -np.inf], "2 NaN or infinite"),
        ([[1.0, 2.0]], [1.0], "1-D"),
    ],
)
def test_degenerate_scores_raise(id_s, ood_s, match):
    with pytest.raises(DataError, match=match):
        metrics.ood_metrics(np.asarray(id_s), np.asarray(ood_s))


def test_accuracy_and_mismatch():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert metrics.accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.accuracy([0, 1, 1], [0, 1, 1]) == 1.0
    with pytest.raises(DataError, match="equal length"):
        metrics.accuracy([0, 1], [0, 1, 1])
    with pytest.raises(DataError, match="no labelled"):
        metrics.accuracy([], [])


CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_shot_groups_cifar10_lt():
    groups = metrics.shot_groups(CIFAR10_LT)
    assert np.flatnonzero(groups["many"]).tolist() == [0, 1, 2]
    assert np.flatnonzero(groups["medium"]).tolist() == [3, 4, 5, 6]
    assert np.flatnonzero(groups["few"]).tolist() == [7, 8, 9]
    # The grouping depends on the counts, not on the class order.
    shuffled = metrics.shot_groups(CIFAR10_LT[::-1])
    assert np.flatnonzero(shuffled["many"]).tolist() == [7, 8, 9]


def test_shot_groups_cifar100_lt_and_imagenet_lt():
    counts = [int(500 * 0.01 ** (c / 99)) for c in range(100)]
    assert sum(counts) == 10847
    groups = metrics.shot_groups(counts)
    many_thr, few_thr = counts[34], counts[67]
    assert groups["many"].tolist() == [n > many_thr for n in counts]
    assert groups["few"].tolist() == [n < few_thr for n in counts]
    assert (groups["many"] | groups["medium"] | groups["few"]).all()
    imagenet = np.array([1280, 500, 101, 100, 50, 20, 19, 5] * 125)
    groups = metrics.shot_groups(imagenet)
    assert groups["many"][:8].tolist() == [True, True, True, False, False, False, False, False]
    assert groups["few"][:8].tolist() == [False, False, False, False, False, False, True, True]
    with pytest.raises(DataError, match="positive"):
        metrics.shot_groups([10, 0, 3])


def test_shot_accuracy_by_hand():
    counts = CIFAR10_LT
    labels = np.repeat(np.arange(10), 2)
    preds = labels.copy()
    preds[0] = 5  # class 0: 1 of 2 right
    preds[16:18] = 0  # class 8: 0 of 2 right
    # many = {0, 1, 2}: (0.5 + 1 + 1) / 3; medium = {3..6}: 1; few = {7, 8, 9}: (1 + 0 + 1) / 3
    result = metrics.shot_accuracy(preds, labels, counts)
    assert result["many_acc"] == pytest.approx(2.5 / 3)
    assert result["medium_acc"] == pytest.approx(1.0)
    assert result["few_acc"] == pytest.approx(2 / 3)
    # A class without test samples is ignored (NaN-mean), not counted as 0.
    keep = labels != 9
    assert metrics.shot_accuracy(preds[keep], labels[keep], counts)["few_acc"] == pytest.approx(0.5)
