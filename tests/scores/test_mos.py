"""MOS group score and group-aware prediction against hand-worked and loop-based computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oodlab.errors import ConfigError, DataError
from oodlab.scores import SCORES
from oodlab.scores.mos import MOS, group_slices, mos, mos_predict
from oodlab.types import Outputs


def outputs(logits) -> Outputs:
    logits = torch.as_tensor(logits, dtype=torch.float32)
    n = len(logits)
    return Outputs(logits=logits, features=torch.zeros(n, 1), labels=torch.full((n,), -1))


def others_probability(row, start, size):
    """p_others = 1 / (1 + Σ_j exp(ℓ_j − ℓ_0)) over the group's class logits ℓ_j."""
    group = row[start : start + size]
    return 1.0 / (1.0 + sum(math.exp(z - group[0]) for z in group[1:]))


def test_group_slices_by_hand():
    assert [(s.start, s.stop) for s in group_slices([2, 3, 4])] == [(0, 2), (2, 5), (5, 9)]


def test_two_groups_by_hand():
    # Groups [others, a] and [others, b, c].
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.0, 2.0, 0.0]])
    e2 = math.exp(2)
    # Sample 0: group 0 others = 1/(1+e²); group 1 others = e/(e+2).
    # Sample 1: group 0 others = e³/(e³+1); group 1 others = 1/(1+e²+1).
    expected = [
        min(1 / (1 + e2), math.e / (math.e + 2)),
        min(e2**1.5 / (e2**1.5 + 1), 1 / (2 + e2)),
    ]
    assert mos(logits, [2, 3]).tolist() == pytest.approx(expected, rel=1e-6)
    # Sample 0: group 0's "a" (flat 0) has softmax e²/(1+e²) = 0.88 > group 1's best.
    # Sample 1: group 1's "b" (flat 1 + 0 = 1) has e²/(e²+2) = 0.79 > group 0's e⁰/(e³+1).
    assert mos_predict(logits, [2, 3]).tolist() == [0, 1]


def test_three_groups_by_hand():
    # Groups [o, a], [o, b, c], [o, d]: classes a=0, b=1, c=2, d=3.
    logits = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 4.0]])
    # Others: ½, 1/3, 1/(1+e⁴) → min = 1/(1+e⁴); best class d with e⁴/(1+e⁴).
    assert mos(logits, [2, 3, 2]).item() == pytest.approx(1 / (1 + math.exp(4)), rel=1e-6)
    assert mos_predict(logits, [2, 3, 2]).tolist() == [3]


def test_against_the_sigmoid_form_on_random_logits():
    sizes = [3, 5, 2, 4]
    logits = 3 * torch.randn(20, sum(sizes), generator=torch.Generator().manual_seed(0))
    starts = np.cumsum([0, *sizes[:-1]])
    expected = [
        min(others_probability(row, int(a), n) for a, n in zip(starts, sizes))
        for row in logits.tolist()
    ]
    assert mos(logits, sizes).tolist() == pytest.approx(expected, rel=1e-5)


def test_one_group_is_a_plain_softmax_with_an_others_column():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mos(logits, [4]), torch.softmax(logits, dim=1)[:, 0])
    # Prediction: the best non-others column, i.e. argmax of the class logits alone.
    torch.testing.assert_close(mos_predict(logits, [4]), logits[:, 1:].argmax(1))


def test_prediction_against_the_two_step_rule():
    # §3.4 literally: per group, softmax and drop others, note the best class; pick the
    # group with the highest best probability; flat index = classes of earlier groups + j.
    sizes = [3, 2, 4]
    logits = 2 * torch.randn(30, sum(sizes), generator=torch.Generator().manual_seed(2))
    expected = []
    for row in logits.double():
        best = []
        start, offset = 0, 0
        for n in sizes:
            probs = torch.softmax(row[start : start + n], 0)[1:]
            best.append((probs.max().item(), offset + int(probs.argmax())))
            start, offset = start + n, offset + n - 1
        expected.append(max(best, key=lambda pair: pair[0])[1])
    assert mos_predict(logits, sizes).tolist() == expected


def test_sign_pin_on_a_group_softmax_problem():
    # ID: confident in its own group (class logit 4, others 0), "others" elsewhere; OOD:
    # "others" (logit 2) in every group. sizes [3, 4, 3] → classes 2 + 3 + 2.
    generator = torch.Generator().manual_seed(3)
    sizes, slices = [3, 4, 3], group_slices([3, 4, 3])
    n = 60
    id_logits = 0.5 * torch.randn(n, 10, generator=generator)
    for i in range(n):
        own = i % 3
        for g, s in enumerate(slices):
            if g == own:
                id_logits[i, s.start + 1 + i % (sizes[g] - 1)] += 4.0
            else:
                id_logits[i, s.start] += 4.0
    ood_logits = 0.5 * torch.randn(n, 10, generator=generator)
    for s in slices:
        ood_logits[:, s.start] += 2.0
    score = MOS([3, 4, 3])
    values = torch.cat([score.score(outputs(id_logits)), score.score(outputs(ood_logits))])
    assert roc_auc_score(np.r_[np.zeros(n), np.ones(n)], values.numpy()) > 0.95


def test_class_matches_function_and_group_sizes_change_the_scores():
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))
    score = SCORES.create("mos", group_sizes=[2, 3])
    assert isinstance(score, MOS)
    assert score.group_sizes == (2, 3)
    torch.testing.assert_close(score.score(outputs(logits)), mos(logits, [2, 3]))
    assert not torch.equal(score.score(outputs(logits)), MOS([3, 2]).score(outputs(logits)))


def test_errors():
    logits = torch.zeros(2, 5)
    with pytest.raises(DataError, match="add up to 4"):
        mos(logits, [2, 2])
    with pytest.raises(DataError, match=">= 2"):
        mos(logits, [1, 4])
    with pytest.raises(DataError, match="add up to"):
        mos_predict(logits, [3, 3])
    with pytest.raises(DataError, match="group sizes"):
        MOS().score(outputs(logits))
    for bad in ([1, 3], [], [2.5, 2], [True, 2], "23", 5):
        with pytest.raises(ConfigError):
            MOS(bad)  # type: ignore[arg-type]
