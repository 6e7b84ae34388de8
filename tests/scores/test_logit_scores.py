"""MSP, MaxLogit, Energy, BinDisc, KL matching, MOS and MCM against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from oodlab.errors import DataError
from oodlab.scores.bin_disc import bin_disc
from oodlab.scores.energy import energy
from oodlab.scores.kl_matching import KLMatching, kl_matching
from oodlab.scores.max_logit import max_logit
from oodlab.scores.mcm import mcm
from oodlab.scores.mos import group_slices, mos, mos_predict
from oodlab.scores.msp import msp
from oodlab.types import Outputs

LOGITS = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 3.0, -1.0]])


def test_msp_max_logit_energy_by_hand():
    e2 = math.exp(2)
    assert msp(LOGITS)[0].item() == pytest.approx(-e2 / (e2 + 2))
    assert msp(LOGITS)[1].item() == pytest.approx(-1 / 3)
    assert max_logit(LOGITS).tolist() == [-2.0, -1.0, -3.0]
    assert energy(LOGITS)[1].item() == pytest.approx(-(1 + math.log(3)))
    # Energy with T = 2: -2 * log(sum exp(f / 2)).
    expected = -2 * math.log(math.exp(1) + 2)
    assert energy(LOGITS, temperature=2.0)[0].item() == pytest.approx(expected)


def test_energy_at_small_temperature_tends_to_max_logit():
    torch.testing.assert_close(energy(LOGITS, 1e-3), max_logit(LOGITS), atol=1e-2, rtol=0)


def test_bin_disc_is_one_minus_sigmoid():
    g = torch.tensor([0.0, 2.0, -3.0])
    expected = [0.5, 1 - 1 / (1 + math.exp(-2)), 1 - 1 / (1 + math.exp(3))]
    assert bin_disc(g).tolist() == pytest.approx(expected)


def test_kl_matching_against_scipy():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(7, 4)))
    templates = torch.softmax(torch.tensor(rng.normal(size=(4, 4))), dim=1)
    scores = kl_matching(logits, templates)
    probs = torch.softmax(logits, dim=1).numpy()
    expected = [min(entropy(p, d) for d in templates.numpy()) for p in probs]
    assert scores.tolist() == pytest.approx(expected, rel=1e-5)


def test_kl_matching_templates_by_predicted_and_true_class():
    logits = torch.tensor([[3.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    outputs = Outputs(logits=logits, features=torch.zeros(3, 1), labels=labels)
    probs = torch.softmax(logits.double(), 1)
    predicted = KLMatching().fit(outputs).templates_
    torch.testing.assert_close(predicted[0], probs[:2].mean(0))  # rows 0 and 1 predict class 0
    torch.testing.assert_close(predicted[1], probs[2])
    true = KLMatching("true").fit(outputs).templates_
    torch.testing.assert_close(true[0], probs[0])
    torch.testing.assert_close(true[1], probs[1:].mean(0))
    # A class never predicted gets the one-hot template.
    never = Outputs(
        logits=torch.tensor([[5.0, 0.0]]), features=torch.zeros(1, 1), labels=torch.tensor([0])
    )
    assert KLMatching().fit(never).templates_[1].tolist() == [0.0, 1.0]


def test_mos_by_hand():
    # Two groups: [others, a] and [others, b, c].
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.0, 2.0, 0.0]])
    sizes = [2, 3]
    e2 = math.exp(2)
    others_g0 = [1 / (1 + e2), e2**1.5 / (e2**1.5 + 1)]
    others_g1 = [math.e / (math.e + 2), 1 / (1 + e2 + 1)]
    expected = [min(a, b) for a, b in zip(others_g0, others_g1)]
    assert mos(logits, sizes).tolist() == pytest.approx(expected, rel=1e-6)
    # Sample 0: best non-others class is group 0's "a" (flat 0); sample 1: group 1's "b" (flat 1).
    assert mos_predict(logits, sizes).tolist() == [0, 1]
    assert [(s.start, s.stop) for s in group_slices(sizes)] == [(0, 2), (2, 5)]
    with pytest.raises(DataError, match="add up to 5"):
        mos(logits[:, :4], sizes)


def test_mos_single_group_is_softmax_with_an_others_column():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    expected = torch.softmax(logits, dim=1)[:, 0]
    torch.testing.assert_close(mos(logits, [4]), expected)


def test_mcm_by_hand_and_per_sample_normalisation():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    features = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # Sample 0: cosines (1, 0); sample 1: (1/√2, 1/√2).
    s0 = math.exp(1) / (math.exp(1) + 1)
    assert mcm(features, embeddings).tolist() == pytest.approx([-s0, -0.5])
    # τ = 0.5 sharpens: softmax(2 * cos).
    s0_half = math.exp(2) / (math.exp(2) + 1)
    assert mcm(features, embeddings, 0.5)[0].item() == pytest.approx(-s0_half)
    # Scaling one sample changes nothing (a batch-norm quirk would change the other sample).
    scaled = features * torch.tensor([[10.0], [1.0]])
    torch.testing.assert_close(mcm(scaled, embeddings), mcm(features, embeddings))
