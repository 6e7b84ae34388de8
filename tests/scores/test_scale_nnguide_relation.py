"""SCALE, NNGuide and Relation against hand-worked examples and loop-by-loop numpy forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oodlab.scores.nnguide import NNGuide, nnguide
from oodlab.scores.relation import Relation, relation
from oodlab.scores.scale import SCALE
from oodlab.types import HEAD_INPUT, Outputs


def outputs(features, logits, head=None, extras=None):
    features, logits = torch.as_tensor(features).double(), torch.as_tensor(logits).double()
    weight, bias = head if head is not None else (None, None)
    return Outputs(
        logits=logits, features=features, labels=torch.zeros(len(features), dtype=torch.long),
        head_weight=weight, head_bias=bias, extras=extras or {},
    )  # fmt: skip


def test_scale_by_hand():
    # h = (3, 1, 0, 0), p = 50: keep 2 of 4 -> s2 = 4, s1 = 4, r = 1, h' = e * h
    h = torch.tensor([[3.0, 1.0, 0.0, 0.0]])
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    b = torch.tensor([0.0, 0.5])
    logits = h @ w.T + b
    got = SCALE(percentile=50).score(outputs(h, logits, (w, b)))
    e = math.e
    expected = -math.log(math.exp(3 * e) + math.exp(1 * e + 0.5))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # p = 75 keeps only the largest: s2 = 3, r = 4/3
    got = SCALE(percentile=75).score(outputs(h, logits, (w, b)))
    f = math.exp(4 / 3)
    assert got.item() == pytest.approx(-math.log(math.exp(3 * f) + math.exp(f + 0.5)), rel=1e-6)


def test_scale_space_option_reads_raw_features_or_the_head_input():
    h = torch.tensor([[2.0, 1.0, 1.0]])
    z = torch.tensor([[1.0, 0.0, 3.0]])
    w, b = torch.eye(3), torch.zeros(3)
    out = outputs(h, z @ w.T, (w, b), {HEAD_INPUT: z})
    head = SCALE(percentile=0).score(out).item()  # p = 0: keep all, r = 1
    raw = SCALE(percentile=0, space="features").score(out).item()
    assert head == pytest.approx(-math.log(sum(math.exp(v * math.e) for v in (1, 0, 3))))
    assert raw == pytest.approx(-math.log(sum(math.exp(v * math.e) for v in (2, 1, 1))))


def _lse(v):
    m = max(v)
    return m + math.log(sum(math.exp(x - m) for x in v))


# NNGuide and Relation compute their bank products in float32 (no float64 copy of the bank):
# against these float64 loops they agree to a relative 1e-5 (float32 dot products of unit
# vectors, about 1e-6 in practice).
F32 = 1e-5


@pytest.mark.parametrize("blocks", [{}, {"chunk": 2, "bank_chunk": 3}])
def test_nnguide_equals_a_loop_over_the_bank(blocks):
    rng = np.random.default_rng(0)
    train_h, train_l = rng.random((7, 4)), rng.normal(size=(7, 3))
    test_h, test_l = rng.random((5, 4)), rng.normal(size=(5, 3))
    fitted = NNGuide(k=3).fit(outputs(train_h, train_l))
    test = outputs(test_h, test_l)
    score = nnguide(fitted.bank_, test.features, test.logits, 3, **blocks)
    assert score.dtype == torch.float64
    torch.testing.assert_close(score, fitted.score(test), rtol=1e-6, atol=0)  # blocks: round-off
    for i in range(5):
        q = test_h[i] / np.linalg.norm(test_h[i])
        sims = sorted(
            (float(q @ (train_h[j] / np.linalg.norm(train_h[j])) * _lse(train_l[j]))
             for j in range(7)), reverse=True,
        )  # fmt: skip
        expected = -(sum(sims[:3]) / 3) * _lse(test_l[i])
        assert score[i].item() == pytest.approx(expected, rel=F32)


def test_nnguide_bank_fraction_keeps_the_first_rows():
    train = outputs([[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 5.0]])
    test = outputs([[0.0, 1.0]], [[0.0, 0.0]])
    got = NNGuide(k=1, bank_fraction=0.5).fit(train).score(test).item()
    assert got == 0.0  # the only bank row (1, 0) is orthogonal to the query
    full = NNGuide(k=1).fit(train).score(test).item()
    assert full == pytest.approx(-_lse([0.0, 5.0]) * math.log(2))


def test_relation_by_hand_with_threshold_and_power():
    # bank: e1 with p = (1, 0); e2 with p = (0.5, 0.5)
    bank = outputs([[1.0, 0.0], [0.0, 1.0]], [[50.0, 0.0], [0.0, 0.0]])
    query = outputs([[1.0, 1.0]], [[0.0, 0.0]])  # z = (1, 1)/√2, p = (0.5, 0.5)
    r1, r2 = (1 / math.sqrt(2)) * 0.5, (1 / math.sqrt(2)) * 0.5
    got = Relation(power=2).fit(bank).score(query).item()
    assert got == pytest.approx(-(r1**2 + r2**2), rel=F32)
    # an edge below the threshold is dropped
    got = Relation(threshold=0.4).fit(bank).score(query).item()
    assert got == 0.0
    # negative feature similarity is clamped to zero
    far = outputs([[-1.0, -1.0]], [[0.0, 0.0]])
    assert Relation().fit(bank).score(far).item() == 0.0


@pytest.mark.parametrize("blocks", [{}, {"chunk": 3, "bank_chunk": 2}])
def test_relation_equals_a_loop(blocks):
    rng = np.random.default_rng(1)
    train_h, train_l = rng.normal(size=(9, 3)), rng.normal(size=(9, 4))
    test_h, test_l = rng.normal(size=(4, 3)), rng.normal(size=(4, 4))
    fitted = Relation(power=3).fit(outputs(train_h, train_l))
    assert fitted.bank_features_.dtype == fitted.bank_probs_.dtype == torch.float32
    test = outputs(test_h, test_l)
    got = relation(
        fitted.bank_features_, fitted.bank_probs_, test.features, test.logits, 3, 0.03, **blocks
    )

    def soft(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    for i in range(4):
        total = 0.0
        zi = test_h[i] / np.linalg.norm(test_h[i])
        for j in range(9):
            zj = train_h[j] / np.linalg.norm(train_h[j])
            rel = max(float(zi @ zj), 0.0) * float(soft(test_l[i]) @ soft(train_l[j]))
            assert abs(rel - 0.03) > 1e-4  # no edge at the threshold (float32 may flip it)
            total += rel**3 if rel > 0.03 else 0.0
        assert got[i].item() == pytest.approx(-total, rel=F32, abs=1e-9)
