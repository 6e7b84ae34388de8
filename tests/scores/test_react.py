"""ReAct against numpy: percentile threshold, clipping, then the energy by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores.react import ReAct, react
from oodlab.types import Outputs


def numpy_react(features, weight, bias, threshold):
    logits = np.minimum(features, threshold) @ weight.T + bias
    top = logits.max(1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(1)))


@pytest.mark.parametrize("percentile", [50, 80, 90])
def test_against_numpy(toy, percentile):
    score = ReAct(percentile=percentile).fit(toy.train)
    threshold = np.percentile(toy.train.features.double().numpy(), percentile)
    assert score.threshold_ == pytest.approx(threshold)
    expected = numpy_react(
        toy.ood.features.double().numpy(),
        toy.ood.head_weight.double().numpy(),
        toy.ood.head_bias.double().numpy(),
        threshold,
    )
    np.testing.assert_allclose(score.score(toy.ood).numpy(), expected, rtol=1e-5)


def test_hand_worked_example():
    # h = (3, 1), c = 2: min(h, c) = (2, 1); W = I, b = 0: energy = -log(e² + e¹).
    out = react(torch.tensor([[3.0, 1.0]]), torch.eye(2), torch.zeros(2), 2.0)
    assert out.item() == pytest.approx(-np.log(np.exp(2) + np.exp(1)), rel=1e-6)


def test_nothing_clipped_gives_back_the_plain_energy(toy):
    # At the 100th percentile nothing of the training set is clipped.
    score = ReAct(percentile=100).fit(toy.train)
    expected = -torch.logsumexp(toy.train.logits.double(), dim=1)
    torch.testing.assert_close(score.score(toy.train).double(), expected, rtol=1e-5, atol=1e-5)


def test_percentile_takes_effect(toy):
    low = ReAct(percentile=50).fit(toy.train).score(toy.id)
    high = ReAct(percentile=99).fit(toy.train).score(toy.id)
    assert not torch.equal(low, high)


@pytest.mark.parametrize("percentile", [-1, 101, "90", True])
def test_invalid_percentile_raises(percentile):
    with pytest.raises(ConfigError):
        ReAct(percentile=percentile)


def test_not_fitted(toy):
    with pytest.raises(NotFittedError):
        ReAct().score(toy.id)


def test_headless_outputs_raise(toy):
    headless = Outputs(logits=toy.id.logits, features=toy.id.features, labels=toy.id.labels)
    with pytest.raises(DataError, match="linear head"):
        ReAct().fit(toy.train).score(headless)
