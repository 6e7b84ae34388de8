"""Cross-entropy with logit adjustment against the softmax written out."""

from __future__ import annotations

import pytest
import torch

from oodlab.errors import ConfigError
from oodlab.losses import LOSSES
from oodlab.losses.ce import CrossEntropy


def test_logit_adjusted_cross_entropy_by_its_formula():
    prior = torch.tensor([0.7, 0.2, 0.1])
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2, 2])
    tau = 1.5
    adjusted = logits + tau * prior.log()
    probs = adjusted.exp() / adjusted.exp().sum(1, keepdim=True)
    expected = -probs[torch.arange(4), targets].log().mean()
    torch.testing.assert_close(CrossEntropy(prior, tau=tau)(logits, targets), expected)


def test_plain_and_uniform_prior_are_the_same_loss():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([0, 1, 2, 3, 0])
    plain = LOSSES.create("ce")(logits, targets)
    # A uniform prior shifts every logit by the same constant: softmax is unchanged.
    uniform = CrossEntropy(torch.full((4,), 0.25), tau=1.0)(logits, targets)
    torch.testing.assert_close(plain, uniform)
    # Adding τ·log π lowers the rare classes' logits, so their targets cost more.
    skewed = CrossEntropy(torch.tensor([0.97, 0.01, 0.01, 0.01]), tau=1.0)
    rare = torch.tensor([1, 1, 2, 3, 3])
    assert skewed(logits, rare) > LOSSES.create("ce")(logits, rare)


def test_adjustment_needs_a_prior():
    with pytest.raises(ConfigError, match="prior"):
        CrossEntropy(None, tau=1.0)
