"""Outlier Exposure against the cross-entropy-to-uniform form, a hand example and its gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodlab.losses import LOSSES
from oodlab.losses.oe import OELoss, outlier_exposure


def test_oe_is_cross_entropy_to_the_uniform_distribution():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # KL(u || p) = CE(u, p) − H(u): the same loss up to the constant log C.
    kl = F.kl_div(F.log_softmax(logits, dim=1), torch.full_like(logits, 0.2), reduction="batchmean")
    torch.testing.assert_close(outlier_exposure(logits), kl + math.log(5))


def test_oe_by_hand():
    # logits (0, ln 3): LSE = ln 4 and the mean logit is ln(3) / 2.
    hand = torch.tensor([[0.0, math.log(3)], [1.0, 1.0]])
    expected = ((math.log(4) - math.log(3) / 2) + math.log(2)) / 2
    assert outlier_exposure(hand).item() == pytest.approx(expected)


def test_oe_gradient_is_softmax_minus_uniform():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    outlier_exposure(logits).backward()
    expected = (torch.softmax(logits.detach(), dim=1) - 1 / 3) / 4
    torch.testing.assert_close(logits.grad, expected)


def test_oe_loss_with_an_outlier_mask():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), requires_grad=True)
    targets = torch.tensor([0, 2, 1, -1, -1])
    is_aux = targets < 0
    loss = LOSSES.create("oe", weight=0.5)(logits, targets, is_aux)
    ce = -F.log_softmax(logits[:3], dim=1)[torch.arange(3), targets[:3]].mean()
    uniform = -F.log_softmax(logits[3:], dim=1).mean(1).mean()
    torch.testing.assert_close(loss, ce + 0.5 * uniform)
    loss.backward()
    assert (logits.grad.abs().sum(1) > 0).all()  # ID rows and outlier rows both learn
    only_id = OELoss()(logits, targets.clamp(min=0), torch.zeros(5, dtype=torch.bool))
    torch.testing.assert_close(only_id, F.cross_entropy(logits, targets.clamp(min=0)))
