"""Energy-OE hinges and the binary discriminator loss, by hand and by scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss

from oodlab.errors import ConfigError
from oodlab.losses.bindisc import BinDiscLoss, binary_discrimination
from oodlab.losses.energy_oe import EnergyOELoss, energy_hinges


def test_energy_hinges_by_hand():
    # LSE of (ln 9, 0, ...) over 2 classes = ln 10: E_in = -ln 10 against m_in = -3 -> 0.6974
    # above the margin; the second ID row, E = -ln(2 e^5) < -3, is inside.
    id_logits = torch.tensor([[math.log(9.0), 0.0], [5.0, 5.0]])
    aux_logits = torch.tensor([[0.0, 0.0], [-8.0, -8.0]])  # E_out = -ln 2 and 8 - ln 2
    m_in, m_out = -3.0, -1.0
    e_in = [-math.log(10.0), -(5 + math.log(2))]
    e_out = [-math.log(2.0), 8 - math.log(2.0)]
    expected = (
        sum(max(0, e - m_in) ** 2 for e in e_in) / 2
        + sum(max(0, m_out - e) ** 2 for e in e_out) / 2
    )
    assert energy_hinges(id_logits, aux_logits, m_in, m_out).item() == pytest.approx(expected)


def test_energy_oe_loss_adds_the_weighted_hinges_to_the_id_ce():
    torch.manual_seed(0)
    logits = torch.randn(6, 4) * 5
    targets = torch.tensor([0, 1, 2, 3, -1, -1])
    is_aux = targets < 0
    got = EnergyOELoss(weight=0.1, m_in=-2.0, m_out=-1.0)(logits, targets, is_aux)
    expected = F.cross_entropy(logits[:4], targets[:4]) + 0.1 * energy_hinges(
        logits[:4], logits[4:], -2.0, -1.0
    )
    torch.testing.assert_close(got, expected)
    with pytest.raises(ConfigError, match="m_in < m_out"):
        EnergyOELoss(m_in=-1.0, m_out=-2.0)


def test_binary_discrimination_is_the_log_loss():
    g_id, g_aux = torch.tensor([2.0, -0.5, 0.1]), torch.tensor([-3.0, 0.7])
    p_id = torch.sigmoid(torch.cat([g_id, g_aux])).numpy().astype(np.float64)
    expected = log_loss([1, 1, 1, 0, 0], p_id, labels=[0, 1])
    assert binary_discrimination(g_id, g_aux).item() == pytest.approx(expected, rel=1e-5)
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 2, 1, -1, -1])
    g = torch.cat([g_id, g_aux])
    got = BinDiscLoss(0.5)(logits, g, targets, targets < 0)
    assert got.item() == pytest.approx(
        F.cross_entropy(logits[:3], targets[:3]).item() + 0.5 * expected, rel=1e-5
    )
