from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodlab.losses.ce import CrossEntropy
from oodlab.losses.oe import OELoss, outlier_exposure


def test_oe_is_cross_entropy_to_the_uniform_distribution():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    uniform = torch.full_like(logits, 1 / 5)
    expected = -(uniform * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(outlier_exposure(logits), expected)
    # By hand: logits (0, ln 3) -> LSE = ln 4, mean = ln(3)/2.
    hand = torch.tensor([[0.0, math.log(3)]])
    assert outlier_exposure(hand).item() == pytest.approx(math.log(4) - math.log(3) / 2)


def test_oe_loss_combines_id_ce_and_outliers():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    targets = torch.tensor([0, 2, 1, -1, -1])
    is_aux = targets < 0
    loss = OELoss(weight=0.5)(logits, targets, is_aux)
    expected = F.cross_entropy(logits[:3], targets[:3]) + 0.5 * outlier_exposure(logits[3:])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad.abs().sum(1) > 0).all()  # every row, ID and outlier, gets a gradient


def test_logit_adjusted_ce():
    prior = torch.tensor([0.7, 0.2, 0.1])
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2, 2])
    expected = F.cross_entropy(logits + torch.log(prior), targets)
    torch.testing.assert_close(CrossEntropy(prior, tau=1.0)(logits, targets), expected)
    torch.testing.assert_close(CrossEntropy()(logits, targets), F.cross_entropy(logits, targets))
