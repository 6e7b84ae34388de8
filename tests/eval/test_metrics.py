"""Metric values against independent computations.

The references written here: pairwise counting (AUROC), brute-force threshold sweeps (the
three FPR conventions and the threshold), a loop over distinct thresholds (average
precision), scikit-learn called the OpenOOD way (peers.md §2.3), hand-worked toy examples,
and per-class loops (shot-group accuracy). Convention: OOD positive, higher = more OOD.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from oodlab.errors import ConfigError, DataError
from oodlab.eval import metrics

RNG = np.random.default_rng(0)
GAUSS_ID = RNG.normal(0.0, 1.0, 400)
GAUSS_OOD = RNG.normal(1.4, 1.2, 300)
# Rounded to integers: about 8 distinct values, so almost every threshold is a tie.
TIED_ID = np.round(GAUSS_ID)
TIED_OOD = np.round(GAUSS_OOD)
CASES = {"gauss": (GAUSS_ID, GAUSS_OOD), "tied": (TIED_ID, TIED_OOD)}

TOY_ID = [0.1, 0.2, 0.3, 0.4]
TOY_OOD = [0.35, 0.5, 0.6, 0.7]


# --------------------------------------------------------------------------- references


def pairwise_auroc(id_s, ood_s):
    """P(OOD score > ID score) + ½ P(equal), by counting all N_id · N_ood pairs."""
    diff = np.asarray(ood_s)[:, None] - np.asarray(id_s)[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def brute_fpr_first(id_s, ood_s, level=0.95):
    """Sweep every pooled value t from high to low (flag score ≥ t); the ID fraction flagged
    at the first t that flags at least ``level`` of OOD."""
    id_s, ood_s = np.asarray(id_s), np.asarray(ood_s)
    for t in sorted(set(np.r_[id_s, ood_s].tolist()), reverse=True):
        if np.mean(ood_s >= t) >= level:
            return np.mean(id_s >= t)
    raise AssertionError("unreachable: the lowest value flags everything")


def brute_fpr_min(id_s, ood_s, level=0.95):
    """The same number by a second route: the smallest ID fraction flagged among all
    thresholds (score ≥ t) that flag at least ``level`` of OOD."""
    id_s, ood_s = np.asarray(id_s), np.asarray(ood_s)
    pooled = np.unique(np.r_[id_s, ood_s])
    return min(np.mean(id_s >= t) for t in pooled if np.mean(ood_s >= t) >= level)


def brute_fpr_id(id_s, ood_s, level=0.95):
    """Smallest OOD fraction accepted (score ≤ t) among thresholds accepting ≥ level of ID."""
    id_s, ood_s = np.asarray(id_s), np.asarray(ood_s)
    pooled = np.unique(np.r_[id_s, ood_s])
    return min(np.mean(ood_s <= t) for t in pooled if np.mean(id_s <= t) >= level)


def brute_closest(id_s, ood_s, level=0.95):
    """The PASCL / ImOOD / PATT rule, as a sweep (long_tailed.md §4.6).

    Candidates: thresholds (score ≥ t) at the distinct pooled values no lower than the
    lowest OOD score (below it recall stays 1 and only ID is added). Pick the smallest
    |recall − level|; ties go to the higher recall, then to the lower threshold (the
    reference code scans from the full-recall threshold upwards and keeps the first
    minimum). Recall is count / N_ood in float64, as in the reference code.
    """
    id_s, ood_s = np.asarray(id_s), np.asarray(ood_s)
    candidates = []
    for t in np.unique(np.r_[id_s, ood_s]):
        if t < ood_s.min():
            continue
        recall = np.sum(ood_s >= t) / ood_s.size
        candidates.append((abs(recall - level), -recall, t, np.mean(id_s >= t)))
    return min(candidates)[3]


def step_average_precision(labels, scores):
    """Σ_k (R_k − R_{k−1}) · P_k over the distinct thresholds (score ≥ t), by a loop."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    total, previous_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        flagged = scores >= t
        hits = np.sum(flagged & (labels == 1))
        recall = hits / np.sum(labels == 1)
        total += (recall - previous_recall) * hits / np.sum(flagged)
        previous_recall = recall
    return total


def openood_metrics(id_s, ood_s):
    """OpenOOD v1.5 ``compute_all_metrics``, re-derived from peers.md §2.3.

    OpenOOD holds a confidence (higher = ID) and an OOD indicator; oodlab's score is the
    negated confidence. ROC: OOD positive on −conf, scikit-learn defaults; FPR@95 = FPR at
    the first ROC point with TPR ≥ 0.95; AUPR_IN: ID positive on conf, AUPR_OUT: OOD
    positive on −conf, both by the trapezoid rule ``auc(recall, precision)``.
    """
    conf = -np.r_[id_s, ood_s]
    ood_indicator = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
    fpr, tpr, _ = roc_curve(ood_indicator, -conf)
    precision_in, recall_in, _ = precision_recall_curve(1 - ood_indicator, conf)
    precision_out, recall_out, _ = precision_recall_curve(ood_indicator, -conf)
    return {
        "auroc": auc(fpr, tpr),
        "fpr95": fpr[np.argmax(tpr >= 0.95)],
        "aupr_in_trapz": auc(recall_in, precision_in),
        "aupr_out_trapz": auc(recall_out, precision_out),
    }


def random_cases(n_cases=60, seed=1):
    """Small cases with few distinct values (heavy ties) and sizes down to one sample."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n_id, n_ood = rng.integers(1, 13, size=2)
        levels = rng.integers(2, 7)
        id_s = rng.integers(0, levels, n_id).astype(float)
        ood_s = rng.integers(0, levels, n_ood).astype(float) + rng.integers(0, 2)
        yield id_s, ood_s


# --------------------------------------------------------------------------- AUROC


@pytest.mark.parametrize("case", CASES)
def test_auroc_counts_pairs(case):
    id_s, ood_s = CASES[case]
    assert metrics.auroc(id_s, ood_s) == pytest.approx(pairwise_auroc(id_s, ood_s), abs=1e-12)


def test_auroc_counts_pairs_on_small_tied_cases():
    for id_s, ood_s in random_cases():
        if len(set(np.r_[id_s, ood_s])) == 1:
            continue  # a single value: scikit-learn's ROC is undefined, checked below
        expected = pairwise_auroc(id_s, ood_s)
        assert metrics.auroc(id_s, ood_s) == pytest.approx(expected, abs=1e-12), (id_s, ood_s)


def test_all_scores_equal_is_chance():
    # One threshold only: AUROC ½ (every pair tied), every FPR 1 (flag all to flag any).
    m = metrics.ood_metrics([3.0, 3.0], [3.0, 3.0, 3.0])
    assert m["auroc"] == 0.5
    assert m["fpr95"] == m["fpr95_id"] == m["fpr95_closest"] == 1.0
    # AP with every sample at one threshold = the positive fraction.
    assert m["aupr_out"] == pytest.approx(3 / 5)
    assert m["aupr_in"] == pytest.approx(2 / 5)


# --------------------------------------------------------------------------- AUPR


@pytest.mark.parametrize("case", CASES)
def test_average_precision_matches_sklearn_and_a_loop(case):
    id_s, ood_s = CASES[case]
    labels = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
    scores = np.r_[id_s, ood_s]
    out_ap = average_precision_score(labels, scores)  # PASCL / ImOOD / PATT "AUPR"
    in_ap = average_precision_score(1 - labels, -scores)  # PATT "AUPR-in"
    assert metrics.aupr_out(id_s, ood_s) == pytest.approx(out_ap, abs=1e-12)
    assert metrics.aupr_in(id_s, ood_s) == pytest.approx(in_ap, abs=1e-12)
    assert metrics.aupr_out(id_s, ood_s) == pytest.approx(
        step_average_precision(labels, scores), abs=1e-12
    )
    assert metrics.aupr_in(id_s, ood_s) == pytest.approx(
        step_average_precision(1 - labels, -scores), abs=1e-12
    )


@pytest.mark.parametrize("case", CASES)
def test_openood_parity(case):
    """Trapezoid AUPRs, AUROC and first-point FPR95 equal OpenOOD's formulas."""
    id_s, ood_s = CASES[case]
    reference = openood_metrics(id_s, ood_s)
    ours = metrics.ood_metrics(id_s, ood_s)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert metrics.aupr_in(id_s, ood_s, "trapezoid") == ours["aupr_in_trapz"]
    assert metrics.aupr_out(id_s, ood_s, method="trapezoid") == ours["aupr_out_trapz"]


def test_ood_metrics_keys_and_values():
    id_s, ood_s = CASES["tied"]
    m = metrics.ood_metrics(id_s, ood_s)
    assert list(m) == [
        "auroc",
        "aupr_in",
        "aupr_out",
        "aupr_in_trapz",
        "aupr_out_trapz",
        "fpr95",
        "fpr95_id",
        "fpr95_closest",
    ]
    assert m["fpr95"] == metrics.fpr95(id_s, ood_s)
    assert m["fpr95_id"] == metrics.fpr95_id(id_s, ood_s)
    assert m["fpr95_closest"] == metrics.fpr95(id_s, ood_s, rule="closest")
    assert m["aupr_in"] == metrics.aupr_in(id_s, ood_s)
    assert all(isinstance(v, float) for v in m.values())


# --------------------------------------------------------------------------- FPR


@pytest.mark.parametrize("case", CASES)
def test_fprs_match_brute_force_sweeps(case):
    id_s, ood_s = CASES[case]
    assert metrics.fpr95(id_s, ood_s) == pytest.approx(brute_fpr_first(id_s, ood_s))
    assert metrics.fpr95(id_s, ood_s) == pytest.approx(brute_fpr_min(id_s, ood_s))
    assert metrics.fpr95_id(id_s, ood_s) == pytest.approx(brute_fpr_id(id_s, ood_s))
    assert metrics.fpr95(id_s, ood_s, rule="closest") == pytest.approx(brute_closest(id_s, ood_s))


def test_fprs_match_brute_force_on_small_tied_cases_and_other_levels():
    rng = np.random.default_rng(2)
    for id_s, ood_s in random_cases():
        level = float(rng.choice([0.95, 0.8, 0.5, 0.3, 1.0, rng.uniform(0.01, 1.0)]))
        case = (id_s.tolist(), ood_s.tolist(), level)
        first = metrics.fpr_at_tpr(id_s, ood_s, level)
        assert first == pytest.approx(brute_fpr_first(id_s, ood_s, level)), case
        assert first == pytest.approx(brute_fpr_min(id_s, ood_s, level)), case
        closest = metrics.fpr_at_tpr(id_s, ood_s, level, rule="closest")
        assert closest == pytest.approx(brute_closest(id_s, ood_s, level)), case
        kept = metrics.fpr95_id(id_s, ood_s, tpr=level)
        assert kept == pytest.approx(brute_fpr_id(id_s, ood_s, level)), case
        threshold = metrics.threshold_at_tpr(ood_s, level)
        assert threshold in ood_s
        assert np.mean(id_s >= threshold) == pytest.approx(first), case


def test_fpr95_id_is_fpr95_with_roles_swapped():
    # Accepting ID (score ≤ t) is flagging it under the negated score with ID as "OOD".
    for id_s, ood_s in random_cases(20, seed=3):
        assert metrics.fpr95_id(id_s, ood_s) == metrics.fpr95(-ood_s, -id_s)


def test_toy_example_by_hand():
    # ID = [0.1, 0.2, 0.3, 0.4], OOD = [0.35, 0.5, 0.6, 0.7]. Ranked by score, high first:
    #   0.7 O, 0.6 O, 0.5 O, 0.4 I, 0.35 O, 0.3 I, 0.2 I, 0.1 I.
    id_s, ood_s = TOY_ID, TOY_OOD
    # AUROC: 15 of the 16 (ID, OOD) pairs are ordered correctly (only 0.4 > 0.35 is not).
    assert metrics.auroc(id_s, ood_s) == pytest.approx(15 / 16)
    # AP-out: precision at each OOD hit: 1, 1, 1, then 4/5 → (1 + 1 + 1 + 0.8) / 4 = 0.95.
    assert metrics.aupr_out(id_s, ood_s) == pytest.approx(0.95)
    # Trapezoid-out: PR points (recall, precision) (0, 1), (.25, 1), (.5, 1), (.75, 1),
    # (.75, .75) after 0.4, (1, .8) after 0.35. Area: 0.75 · 1 + 0.25 · (0.75 + 0.8) / 2
    # = 0.75 + 0.19375 = 0.94375: the last step is interpolated from 0.75, not 0.8.
    assert metrics.aupr_out(id_s, ood_s, "trapezoid") == pytest.approx(0.94375)
    # ID positive on −score: 0.1 I, 0.2 I, 0.3 I, 0.35 O, 0.4 I, ...: the same shape, so
    # AP-in = 0.95 and trapezoid-in = 0.94375 too.
    assert metrics.aupr_in(id_s, ood_s) == pytest.approx(0.95)
    assert metrics.aupr_in(id_s, ood_s, "trapezoid") == pytest.approx(0.94375)
    # Flagging 95% of OOD needs all 4 (t = 0.35), which also flags ID 0.4: FPR = 1/4.
    assert metrics.fpr95(id_s, ood_s) == pytest.approx(0.25)
    assert metrics.threshold_at_tpr(ood_s) == 0.35
    # Closest rule: recalls from t = 0.35 upwards: 1, .75 (t=.4), .75 (t=.5), .5, .25;
    # |recall − .95| is smallest at recall 1 (t = 0.35) → 1/4 as well.
    assert metrics.fpr95(id_s, ood_s, rule="closest") == pytest.approx(0.25)
    # Accepting 95% of ID needs all 4 (t = 0.4), which also accepts OOD 0.35: 1/4.
    assert metrics.fpr95_id(id_s, ood_s) == pytest.approx(0.25)


def test_toy_example_where_the_rules_differ():
    id_s, ood_s = TOY_ID, TOY_OOD
    # At 70% OOD recall: "first" takes the highest threshold reaching it, t = 0.5 (recall
    # .75, no ID flagged) → 0. "closest": recall .75 is nearest to .7 and is reached at
    # t = 0.4 and t = 0.5; the rule scans from the full-recall end and keeps the first,
    # t = 0.4, which flags ID 0.4 → 1/4.
    assert metrics.fpr_at_tpr(id_s, ood_s, 0.7) == 0.0
    assert metrics.fpr_at_tpr(id_s, ood_s, 0.7, rule="closest") == pytest.approx(0.25)
    assert metrics.threshold_at_tpr(ood_s, 0.7) == 0.5
    # At 99%: recall 1 is closest; of the thresholds with recall 1 the rule reads the
    # highest, t = 0.35 (1/4), not the lowest pooled value 0.1 (which would flag all ID).
    assert metrics.fpr_at_tpr(id_s, ood_s, 0.99, rule="closest") == pytest.approx(0.25)


def test_closest_rule_breaks_an_exact_tie_towards_higher_recall():
    # ID = [0, 2, 3.5], OOD = [1, 3, 3, 4], level 0.5. Thresholds (score ≥ t):
    #   t=4: recall .25, ID 0 | t=3.5: .25, 1 | t=3: .75, 1 | t=2: .75, 2 | t=1: 1, 2.
    # Recalls .25 and .75 are both exactly .25 from .5 (exact in binary). The rule keeps
    # the higher recall, and of its two thresholds the lower one (t = 2): 2/3 of ID.
    id_s, ood_s = [0.0, 2.0, 3.5], [1.0, 3.0, 3.0, 4.0]
    assert metrics.fpr_at_tpr(id_s, ood_s, 0.5, rule="closest") == pytest.approx(2 / 3)
    assert brute_closest(id_s, ood_s, 0.5) == pytest.approx(2 / 3)
    # "first": the highest threshold reaching recall ≥ .5 is t = 3 → 1/3.
    assert metrics.fpr_at_tpr(id_s, ood_s, 0.5) == pytest.approx(1 / 3)


def test_rules_read_the_two_ends_of_the_roc_plateau_at_95_percent():
    """With 300 untied OOD scores, recall 285/300 = 0.95 is reached exactly, at every
    threshold between the 285th and the 286th highest OOD score. "first" reads the highest
    of them (fewest ID flagged), "closest" the lowest (most ID flagged): the closed forms
    mean(ID ≥ s_285) and mean(ID > s_286), with s_k the k-th highest OOD score."""
    id_s, ood_s = CASES["gauss"]
    s = np.sort(ood_s)[::-1]
    highest_end, lowest_end = np.mean(id_s >= s[284]), np.mean(id_s > s[285])
    assert metrics.fpr95(id_s, ood_s) == highest_end
    assert metrics.fpr95(id_s, ood_s, rule="closest") == lowest_end
    assert lowest_end - highest_end == pytest.approx(0.05)  # 20 of the 400 ID samples


def test_first_rule_keeps_every_roc_point():
    # Each distinct value holds one ID and one OOD sample: the ROC is a diagonal run of
    # equal steps. The first point with TPR ≥ .95 is t = 1 (19 of 20 flagged on each side):
    # FPR .95. scikit-learn's default drop_intermediate=True drops that point (OpenOOD uses
    # the default), so the literal OpenOOD formula reads a later point (1.0 with
    # scikit-learn 1.9); oodlab keeps every point and agrees with the sweep.
    values = np.arange(20.0)
    assert metrics.fpr95(values, values) == pytest.approx(0.95)
    assert brute_fpr_first(values, values) == pytest.approx(0.95)
    assert openood_metrics(values, values)["fpr95"] >= metrics.fpr95(values, values)


def test_perfect_and_reversed_separation():
    id_s, ood_s = np.arange(10.0), np.arange(10.0) + 100
    m = metrics.ood_metrics(id_s, ood_s)
    assert m == pytest.approx(
        {
            "auroc": 1.0,
            "aupr_in": 1.0,
            "aupr_out": 1.0,
            "aupr_in_trapz": 1.0,
            "aupr_out_trapz": 1.0,
            "fpr95": 0.0,
            "fpr95_id": 0.0,
            "fpr95_closest": 0.0,
        }
    )
    reversed_ = metrics.ood_metrics(ood_s, id_s)
    assert reversed_["auroc"] == 0.0
    assert reversed_["fpr95"] == reversed_["fpr95_id"] == reversed_["fpr95_closest"] == 1.0
    # Reversed, all 10 ID rank first; the k-th OOD hit has precision k / (10 + k).
    expected_ap = np.mean([k / (10 + k) for k in range(1, 11)])
    assert reversed_["aupr_out"] == pytest.approx(expected_ap)


def test_conventions_differ_where_peers_said_they_would():
    """peers.md §3.4: on overlapping Gaussians the OpenOOD FPR95 (ID flagged at 95% OOD)
    and the ID-positive FPR95 (OOD accepted at 95% ID) are materially different numbers;
    on rounded (tied) scores average precision differs from the trapezoid rule, while the
    trapezoid numbers keep parity with the OpenOOD formula (test_openood_parity)."""
    gauss = metrics.ood_metrics(GAUSS_ID, GAUSS_OOD)
    assert abs(gauss["fpr95"] - gauss["fpr95_id"]) > 0.05
    assert gauss["fpr95"] == pytest.approx(openood_metrics(GAUSS_ID, GAUSS_OOD)["fpr95"])
    # The two OOD-positive rules differ too, by 5 points here (see the next test).
    assert gauss["fpr95_closest"] - gauss["fpr95"] > 0.02
    tied = metrics.ood_metrics(TIED_ID, TIED_OOD)
    reference = openood_metrics(TIED_ID, TIED_OOD)
    for side in ("aupr_in", "aupr_out"):
        assert abs(tied[side] - tied[f"{side}_trapz"]) > 1e-3, side
        assert tied[f"{side}_trapz"] == pytest.approx(reference[f"{side}_trapz"], abs=1e-12)
    assert abs(tied["fpr95"] - tied["fpr95_id"]) > 0.05


def test_tensors_are_accepted():
    id_t, ood_t = torch.tensor(GAUSS_ID), torch.tensor(GAUSS_OOD)
    assert metrics.ood_metrics(id_t, ood_t) == metrics.ood_metrics(GAUSS_ID, GAUSS_OOD)
    # float32 tensors needing grad are read as float64 copies of their float32 values.
    id_32 = torch.tensor(GAUSS_ID, dtype=torch.float32, requires_grad=True)
    ood_32 = torch.tensor(GAUSS_OOD, dtype=torch.float32)
    expected = pairwise_auroc(GAUSS_ID.astype(np.float32), GAUSS_OOD.astype(np.float32))
    assert metrics.auroc(id_32, ood_32) == pytest.approx(expected, abs=1e-12)
    assert metrics.auroc(TOY_ID, tuple(TOY_OOD)) == pytest.approx(15 / 16)  # sequences too


# --------------------------------------------------------------------------- degenerate input

OOD_METRICS = [
    metrics.auroc,
    metrics.aupr_in,
    metrics.aupr_out,
    metrics.fpr95,
    metrics.fpr95_id,
    metrics.fpr_at_tpr,
    metrics.ood_metrics,
]


@pytest.mark.parametrize("metric", OOD_METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("id_s", "ood_s", "match"),
    [
        ([], [1.0], "ID scores is empty"),
        ([1.0], [], "OOD scores is empty"),
        ([1.0, np.nan, 0.0], [2.0], "ID scores hold 1 NaN and 0 infinite values among 3"),
        ([1.0], [np.inf, 2.0, -np.inf], "OOD scores hold 0 NaN and 2 infinite values among 3"),
        ([[1.0, 2.0]], [1.0], r"ID scores must be a 1-D array .* shape \(1, 2\)"),
        ([1.0], 2.0, r"OOD scores must be a 1-D array .* shape \(\)"),
    ],
)
def test_degenerate_scores_raise(metric, id_s, ood_s, match):
    with pytest.raises(DataError, match=match):
        metric(np.asarray(id_s), np.asarray(ood_s))


def test_nan_in_tensor_scores_raises():
    with pytest.raises(DataError, match="OOD scores hold 1 NaN"):
        metrics.ood_metrics(torch.zeros(3), torch.tensor([0.0, float("nan")]))
    with pytest.raises(DataError, match="OOD scores hold 1 NaN"):
        metrics.threshold_at_tpr([0.0, float("nan")])


def test_bad_options_raise_config_errors():
    with pytest.raises(ConfigError, match="'ap' or 'trapezoid'"):
        metrics.aupr_out(TOY_ID, TOY_OOD, method="simpson")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'first' or 'closest'"):
        metrics.fpr95(TOY_ID, TOY_OOD, rule="nearest")  # type: ignore[arg-type]
    for bad in (0.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ConfigError, match=r"tpr must be a recall level in \(0, 1\]"):
            metrics.fpr_at_tpr(TOY_ID, TOY_OOD, bad)
        with pytest.raises(ConfigError, match="tpr must be"):
            metrics.fpr95_id(TOY_ID, TOY_OOD, tpr=bad)


# --------------------------------------------------------------------------- accuracy


def test_accuracy_from_indices_and_logits():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])  # argmax 0, 1, 0
    assert metrics.accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.accuracy(torch.tensor(logits), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert metrics.accuracy([0, 1, 1], [0, 1, 1]) == 1.0
    assert metrics.accuracy(np.array([0.0, 1.0]), [1, 1]) == 0.5  # integral floats are fine


def test_per_class_accuracy_against_a_loop():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, 200)
    labels[labels == 5] = 4  # class 5 has no test sample
    preds = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 6, 200))
    expected = []
    for c in range(6):
        members = labels == c
        expected.append(np.mean(preds[members] == c) if members.any() else np.nan)
    result = metrics.per_class_accuracy(preds, labels, num_classes=6)
    np.testing.assert_allclose(result, expected)
    assert np.isnan(result[5])
    # The mean of per-class accuracies weighted by class size is the overall accuracy.
    sizes = np.bincount(labels, minlength=6)
    overall = np.nansum(result * sizes) / sizes.sum()
    assert overall == pytest.approx(metrics.accuracy(preds, labels))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.accuracy([0, 1], [0, 1, 1]), "2 predictions but 3 labels"),
        (lambda: metrics.accuracy(np.zeros((3, 2)), [0, 1]), "3 predictions but 2 labels"),
        (lambda: metrics.accuracy([], []), "labels are empty"),
        (lambda: metrics.accuracy([0], [[0]]), "labels must be a 1-D"),
        (lambda: metrics.accuracy(np.zeros((1, 2, 2)), [0]), r"\(N,\) or logits \(N, C\)"),
        (lambda: metrics.accuracy([0.5, 1.0], [0, 1]), "non-integer"),
        (lambda: metrics.accuracy([[np.nan, 1.0], [0, 1]], [0, 1]), "NaN or infinite .* 1 of 2"),
        (lambda: metrics.per_class_accuracy([0, 3], [0, 3], 3), "1 labels lie outside the 3"),
        (lambda: metrics.per_class_accuracy([0, 0], [0, -1], 3), "outside"),
        (lambda: metrics.per_class_accuracy([0], [0], 0), "num_classes must be positive"),
        (lambda: metrics.per_class_accuracy(np.zeros((1, 2)), [0], 3), "2 columns but there are 3"),
        (lambda: metrics.shot_accuracy([0, 1], [0, 2], [5, 3]), "outside the 2 classes"),
    ],
)
def test_bad_predictions_or_labels_raise(call, match):
    with pytest.raises(DataError, match=match):
        call()


# --------------------------------------------------------------------------- shot groups

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
CIFAR100_LT = [int(500 * 0.01 ** (c / 99)) for c in range(100)]


def as_indices(mask):
    return np.flatnonzero(mask).tolist()


def test_shot_groups_cifar10_lt():
    # C = 10: many_thr = n[int(3.4)] = n[3] = 1077, few_thr = n[int(6.7)] = n[6] = 232.
    groups = metrics.shot_groups(CIFAR10_LT)
    assert as_indices(groups["many"]) == [0, 1, 2]
    assert as_indices(groups["medium"]) == [3, 4, 5, 6]
    assert as_indices(groups["few"]) == [7, 8, 9]
    # The groups follow the counts, not the class order.
    shuffled = metrics.shot_groups(CIFAR10_LT[::-1])
    assert as_indices(shuffled["many"]) == [7, 8, 9]
    assert as_indices(shuffled["few"]) == [0, 1, 2]
    permutation = np.random.default_rng(5).permutation(10)
    permuted = metrics.shot_groups(torch.tensor(CIFAR10_LT)[permutation])
    for name, mask in groups.items():
        assert permuted[name].tolist() == mask[permutation].tolist(), name


def test_shot_groups_cifar100_lt():
    assert sum(CIFAR100_LT) == 10847  # the published size of CIFAR-100-LT at ratio 100
    # C = 100: many_thr = n[34] = 102, few_thr = n[67] = 22 (counts descending by index).
    assert (CIFAR100_LT[34], CIFAR100_LT[67]) == (102, 22)
    groups = metrics.shot_groups(CIFAR100_LT)
    assert groups["many"].tolist() == [n > 102 for n in CIFAR100_LT]
    assert groups["few"].tolist() == [n < 22 for n in CIFAR100_LT]
    assert as_indices(groups["many"]) == list(range(34))
    assert as_indices(groups["few"]) == list(range(68, 100))
    assert as_indices(groups["medium"]) == list(range(34, 68))


def test_shot_groups_imagenet_lt_like():
    # C = 1000 > 100: fixed cut-offs, many > 100, few < 20 (100 and 20 are medium).
    pattern = [1280, 500, 101, 100, 50, 20, 19, 5]
    counts = np.array(pattern * 125)
    groups = metrics.shot_groups(counts)
    assert groups["many"][:8].tolist() == [True, True, True, False, False, False, False, False]
    assert groups["medium"][:8].tolist() == [False, False, False, True, True, True, False, False]
    assert groups["few"][:8].tolist() == [False, False, False, False, False, False, True, True]
    assert groups["many"].sum() == 375
    assert groups["few"].sum() == 250
    # The switch is at C > 100: 100 equal classes are all medium under the relative rule,
    # 101 are all many under the fixed one.
    assert metrics.shot_groups([500] * 100)["medium"].all()
    assert metrics.shot_groups([500] * 101)["many"].all()


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([10, 0, 3], r"1 bad entries \(class 1 has 0\)"),
        ([10, -2, 3, -1], "2 bad entries"),
        ([10.0, np.nan], "positive and finite"),
        ([], "non-empty 1-D"),
        ([[1, 2]], "non-empty 1-D"),
    ],
)
def test_bad_class_counts_raise(counts, match):
    with pytest.raises(DataError, match=match):
        metrics.shot_groups(counts)


def test_shot_accuracy_by_hand():
    labels = np.repeat(np.arange(10), 2)
    preds = labels.copy()
    preds[0] = 5  # class 0: 1 of 2 right
    preds[16:18] = 0  # class 8: 0 of 2 right
    # many = {0, 1, 2}: (0.5 + 1 + 1) / 3; medium = {3..6}: 1; few = {7, 8, 9}: (1 + 0 + 1) / 3
    result = metrics.shot_accuracy(preds, labels, CIFAR10_LT)
    assert result == pytest.approx({"many_acc": 2.5 / 3, "medium_acc": 1.0, "few_acc": 2 / 3})
    # A class without test samples is left out of its group's mean, not counted as 0.
    keep = labels != 9
    assert metrics.shot_accuracy(preds[keep], labels[keep], CIFAR10_LT)["few_acc"] == 0.5
    # A group without any test sample is NaN.
    keep = labels < 7
    assert np.isnan(metrics.shot_accuracy(preds[keep], labels[keep], CIFAR10_LT)["few_acc"])


def test_shot_accuracy_against_a_per_class_loop():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 100, 3000)
    # Accuracy falls with the class index, so the groups must come out ordered.
    correct = rng.random(3000) < np.linspace(0.9, 0.2, 100)[labels]
    preds = np.where(correct, labels, (labels + 1) % 100)
    logits = np.eye(100)[preds]  # logits give the same answer
    per_class = [np.mean(preds[labels == c] == c) for c in range(100)]
    many_thr, few_thr = CIFAR100_LT[34], CIFAR100_LT[67]
    expected = {
        "many_acc": np.mean([a for a, n in zip(per_class, CIFAR100_LT) if n > many_thr]),
        "medium_acc": np.mean(
            [a for a, n in zip(per_class, CIFAR100_LT) if few_thr <= n <= many_thr]
        ),
        "few_acc": np.mean([a for a, n in zip(per_class, CIFAR100_LT) if n < few_thr]),
    }
    assert metrics.shot_accuracy(preds, labels, CIFAR100_LT) == pytest.approx(expected)
    assert metrics.shot_accuracy(logits, labels, CIFAR100_LT) == pytest.approx(expected)
    assert expected["many_acc"] > expected["medium_acc"] > expected["few_acc"]
