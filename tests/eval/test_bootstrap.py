"""Bootstrap intervals: the weighted metrics equal sklearn / repeated samples; intervals
contain the point estimate, shrink with the test set, are seeded and shared across scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from oodlab.errors import ConfigError
from oodlab.eval.bootstrap import BootstrapConfig, bootstrap_intervals, weighted_auroc_fpr95


def _fpr95_brute(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """ID flagged at the highest threshold flagging >= 95% of OOD, by brute force."""
    for t in np.sort(np.unique(np.r_[id_scores, ood_scores]))[::-1]:
        if np.mean(ood_scores >= t) >= 0.95:
            return float(np.mean(id_scores >= t))
    raise AssertionError("unreachable")


def test_unit_and_integer_counts_match_independent_computations():
    rng = np.random.default_rng(3)
    for _ in range(10):
        a = np.round(rng.normal(0, 1, 120), 1)  # rounded: many ties
        b = np.round(rng.normal(1, 1, 80), 1)
        auroc, fpr = weighted_auroc_fpr95(a, b, np.ones((1, a.size)), np.ones((1, b.size)))
        labels = np.r_[np.zeros(a.size), np.ones(b.size)]
        assert auroc[0] == pytest.approx(roc_auc_score(labels, np.r_[a, b]), abs=1e-12)
        assert fpr[0] == pytest.approx(_fpr95_brute(a, b), abs=1e-12)
        wa, wb = rng.integers(0, 4, a.size), rng.integers(0, 4, b.size)
        auroc, fpr = weighted_auroc_fpr95(a, b, wa[None], wb[None])
        ra, rb = np.repeat(a, wa), np.repeat(b, wb)
        labels = np.r_[np.zeros(ra.size), np.ones(rb.size)]
        assert auroc[0] == pytest.approx(roc_auc_score(labels, np.r_[ra, rb]), abs=1e-12)
        assert fpr[0] == pytest.approx(_fpr95_brute(ra, rb), abs=1e-12)


def _sample(n_id: int, n_ood: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, n_id), rng.normal(1.2, 1, n_ood)


def test_interval_contains_the_point_and_shrinks_as_the_test_set_grows():
    widths = {}
    for n in (100, 400, 3200):
        a, b = _sample(n, n)
        result = bootstrap_intervals(a, {"x": b}, config=BootstrapConfig(samples=400, seed=1))
        labels = np.r_[np.zeros(n), np.ones(n)]
        point = {"auroc": roc_auc_score(labels, np.r_[a, b]), "fpr95": _fpr95_brute(a, b)}
        for metric in ("auroc", "fpr95"):
            lo, hi = result["per_set"]["x"][metric]
            assert lo <= point[metric] <= hi, (n, metric)
            assert result["means"]["all"][metric] == [lo, hi]  # one set: the mean is the set
        widths[n] = {m: np.diff(result["per_set"]["x"][m])[0] for m in ("auroc", "fpr95")}
    for metric in ("auroc", "fpr95"):
        # the width falls roughly as 1/sqrt(n): 8x the images, about a third of the width
        assert widths[400][metric] < widths[100][metric]
        assert widths[3200][metric] < 0.6 * widths[400][metric]


def test_seeded_shared_across_scores_and_group_means():
    a, b = _sample(300, 200)
    c = _sample(300, 150, seed=5)[1]
    groups = {"near": ["b"], "far": ["c"], "all": ["b", "c"]}
    config = BootstrapConfig(samples=200, seed=7)
    first = bootstrap_intervals(a, {"b": b, "c": c}, groups, config=config)
    assert bootstrap_intervals(a, {"b": b, "c": c}, groups, config=config) == first
    other = bootstrap_intervals(a, {"b": b, "c": c}, groups, config=BootstrapConfig(200, seed=8))
    assert other["per_set"]["b"] != first["per_set"]["b"]
    # A monotone transform of the scores leaves every replicate's ranking, hence every
    # interval, unchanged: the replicates depend on the seed and the sets, not on the score.
    transformed = bootstrap_intervals(
        np.exp(a), {"b": np.exp(b), "c": np.exp(c)}, groups, config=config
    )
    assert transformed == first
    assert first["means"]["near"] == first["per_set"]["b"]
    lo, hi = first["means"]["all"]["auroc"]
    point = np.mean(
        [roc_auc_score(np.r_[np.zeros(300), np.ones(x.size)], np.r_[a, x]) for x in (b, c)]
    )
    assert lo <= point <= hi


def test_fake_ood_joins_the_id_side_and_bad_input_raises():
    a, b = _sample(200, 200)
    fake = np.full(50, 10.0)  # ID images scoring above every OOD image: AUROC must fall
    plain = bootstrap_intervals(a, {"x": b}, config=BootstrapConfig(samples=100))
    with_fake = bootstrap_intervals(
        a, {"x": b}, fake_ood={"x": fake}, config=BootstrapConfig(samples=100)
    )
    assert with_fake["per_set"]["x"]["auroc"][1] < plain["per_set"]["x"]["auroc"][0]
    with pytest.raises(ConfigError, match="unknown OOD sets"):
        bootstrap_intervals(a, {"x": b}, {"near": ["y"]})
    with pytest.raises(ConfigError, match="level"):
        BootstrapConfig(level=95)
