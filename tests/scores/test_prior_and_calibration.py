"""ImOOD ada_* scores and PATT calibration against their closed forms and identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oodlab.scores.energy import energy
from oodlab.scores.imood_prior import AdaEnergy, AdaMSP, prior_correction
from oodlab.scores.msp import msp
from oodlab.scores.patt_calibration import PATTEnergy, attention_weights
from oodlab.types import Outputs

PRIOR = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)


def outputs(logits: torch.Tensor) -> Outputs:
    return Outputs(
        logits=logits,
        features=torch.zeros(len(logits), 1),
        labels=torch.zeros(len(logits), dtype=torch.long),
    )


def test_ada_energy_closed_form():
    """§4.10 #1: with κ = τ = 1, s_ada = LSE(f − log π) − log C."""
    logits = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    score = AdaEnergy(prior=PRIOR.tolist()).fit(outputs(logits))
    expected = -(torch.logsumexp(logits.double() - PRIOR.log(), 1) - math.log(3))
    torch.testing.assert_close(
        score.score(outputs(logits)).double(), expected, rtol=1e-5, atol=1e-6
    )


def test_uniform_prior_gives_back_the_plain_scores():
    logits = torch.randn(9, 3, generator=torch.Generator().manual_seed(1))
    uniform = [1 / 3] * 3
    energy_ada = AdaEnergy(prior=uniform).fit(outputs(logits)).score(outputs(logits))
    torch.testing.assert_close(energy_ada, energy(logits), rtol=1e-5, atol=1e-6)
    msp_ada = AdaMSP(prior=uniform).fit(outputs(logits)).score(outputs(logits))
    torch.testing.assert_close(msp_ada, msp(logits) + 1 / 3, rtol=1e-5, atol=1e-6)


def test_ada_msp_two_class_by_hand():
    # p = (0.8, 0.2), π = (0.9, 0.1), τ = 1: β = ½ (0.8/0.9 + 0.2/0.1) = 1.4444...
    logits = torch.tensor([[math.log(0.8), math.log(0.2)]])
    score = AdaMSP(kappa=0.1, prior=[0.9, 0.1]).fit(outputs(logits)).score(outputs(logits))
    beta = 0.5 * (0.8 / 0.9 + 0.2 / 0.1)
    assert score.item() == pytest.approx(-((0.8 - 0.5) + 0.1 * math.log(beta)))
    # τ = 0 makes the adjusted prior uniform, so the correction vanishes.
    assert prior_correction(logits, torch.tensor([0.9, 0.1]), tau_la=0.0).item() == pytest.approx(
        0.0, abs=1e-9
    )


def test_prior_defaults_to_training_frequencies():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    train = Outputs(logits=torch.zeros(6, 3), features=torch.zeros(6, 1), labels=labels)
    assert AdaEnergy().fit(train).prior_.tolist() == pytest.approx([0.5, 1 / 6, 1 / 3])


def test_patt_identity_and_range(toy):
    score = PATTEnergy().fit(toy.train, aux=toy.aux)
    assert score.attention_.min().item() == pytest.approx(0.0)
    assert score.attention_.max().item() == pytest.approx(2.0)
    score.attention_ = torch.ones_like(score.attention_)
    torch.testing.assert_close(score.score(toy.ood), energy(toy.ood.logits), rtol=1e-5, atol=1e-5)


def test_patt_attention_matches_a_literal_class_balanced_average(toy):
    prior = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    weight = toy.train.head_weight.double()
    feats, labels = toy.train.features.double(), toy.train.labels
    per_class = [
        np.mean(
            [(feats[i] * weight[c] / prior[c]).numpy() for i in np.flatnonzero(labels == c)], axis=0
        )
        for c in range(4)
    ]
    a_id = np.mean(per_class, axis=0)
    aux_pred = toy.aux.logits.argmax(1)
    a_ood = np.mean(
        [
            (toy.aux.features[j].double() * weight[aux_pred[j]] / prior[aux_pred[j]]).numpy()
            for j in range(len(toy.aux))
        ],
        axis=0,
    )
    diff = a_id - a_ood
    expected = 2 * (diff - diff.min()) / (diff.max() - diff.min())
    result = attention_weights(toy.train, toy.aux, weight, prior)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-8, atol=1e-10)
    # The exact expectation equals the mean over a large class-balanced resample.
    g = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 4, (20000,), generator=g)
    picks = torch.stack(
        [
            torch.nonzero(labels == c).flatten()[
                torch.randint(0, int((labels == c).sum()), (1,), generator=g)
            ]
            for c in classes[:2000]
        ]
    ).squeeze(1)
    sampled = (feats[picks] * weight[labels[picks]] / prior[labels[picks], None]).mean(0).numpy()
    np.testing.assert_allclose(sampled, a_id, atol=0.15 * np.abs(a_id).max())
