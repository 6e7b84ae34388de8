"""MSP, MaxLogit and Energy against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from oodlab.scores.energy import energy
from oodlab.scores.max_logit import max_logit
from oodlab.scores.msp import msp

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
