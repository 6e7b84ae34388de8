"""ImOOD's regulariser: the bias-adjusted BCE identity, β's special cases and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodlab.errors import ConfigError
from oodlab.losses.imood import (
    ImOODRegulariser,
    adjusted_prior,
    bias_adjusted_bce,
    class_bias,
    detector_score,
    validity_hinge,
)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_bce_fits_sigma_g_over_beta_inside_the_margins():
    # ID rows with beta >= 1 and OOD rows with beta <= 1, delta inside [0.1, 10]: the loss is
    # the BCE of the imbalanced probability sigma(g)/beta (long_tailed.md §4.10 identity 2).
    g = torch.tensor([0.3, -0.2, -0.5, -1.5], dtype=torch.float64)
    beta = torch.tensor([1.4, 2.0, 0.7, 0.5], dtype=torch.float64)
    is_id = torch.tensor([True, True, False, False])
    expected = [
        -math.log(sigmoid(gi) / bi) if idi else -math.log(1 - sigmoid(gi) / bi)
        for gi, bi, idi in zip(g.tolist(), beta.tolist(), is_id.tolist(), strict=True)
    ]
    got = bias_adjusted_bce(g, beta, is_id)
    assert got.item() == pytest.approx(sum(expected) / 4, rel=1e-12)


def test_one_sided_clamps_make_a_margin():
    g = torch.tensor([0.5, 0.5], dtype=torch.float64)
    # An ID sample with beta < 1 is not rewarded (delta -> 1): plain BCE; an OOD sample with
    # beta > 1 likewise.
    beta = torch.tensor([0.5, 3.0], dtype=torch.float64)
    got = bias_adjusted_bce(g, beta, torch.tensor([True, False]))
    plain = (-math.log(sigmoid(0.5)) - math.log(1 - sigmoid(0.5))) / 2
    assert got.item() == pytest.approx(plain, rel=1e-12)
    # Extreme logits stay finite (delta clipped to [0.1, 10]).
    big = bias_adjusted_bce(
        torch.tensor([80.0, -80.0]), torch.tensor([5.0, 0.2]), torch.tensor([True, False])
    )
    assert torch.isfinite(big)


def test_beta_is_one_for_gamma_one_and_a_uniform_prior():
    posterior = torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), 1)
    beta = class_bias(torch.zeros(6, 5), posterior, adjusted_prior(torch.full((5,), 0.2), 1.0))
    torch.testing.assert_close(beta, torch.ones(6))
    # With a prior and gamma = 1: beta = (1/C) sum_c p_c / pi_c, by hand for one sample.
    prior = torch.tensor([0.5, 0.3, 0.2])
    p = torch.tensor([[0.2, 0.3, 0.5]])
    hand = (0.2 / 0.5 + 0.3 / 0.3 + 0.5 / 0.2) / 3
    assert class_bias(torch.zeros(1, 3), p, prior).item() == pytest.approx(hand, rel=1e-6)


def test_adjusted_prior_and_detector_scores():
    prior = torch.tensor([0.6, 0.3, 0.1])
    torch.testing.assert_close(adjusted_prior(prior, 1.0).float(), prior)
    torch.testing.assert_close(adjusted_prior(prior, 0.0).float(), torch.full((3,), 1 / 3))
    squared = torch.tensor([0.36, 0.09, 0.01]) / 0.46
    torch.testing.assert_close(adjusted_prior(prior, 2.0).float(), squared)
    logits = torch.tensor([[math.log(3.0), 0.0, 0.0]])
    assert detector_score(logits, "energy").item() == pytest.approx(math.log(5.0))
    assert detector_score(logits, "msp").item() == pytest.approx(3 / 5 - 1 / 3)
    with pytest.raises(ConfigError, match="bin_disc"):
        detector_score(logits, "bin_disc")


def test_hinge_caps_beta_times_sigma_and_trains_only_gamma():
    g = torch.tensor([2.0, -1.0], requires_grad=True)
    beta = torch.tensor([1.5, 0.5], requires_grad=True)
    loss = validity_hinge(beta, g)
    # Only the first sample violates beta * sigma(g) <= 1.
    expected = max(0.0, math.log(1.5 * sigmoid(2.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert g.grad is None or torch.equal(g.grad, torch.zeros(2))
    assert beta.grad[0] > 0
    assert beta.grad[1] == 0


def test_regulariser_gradients_go_where_the_paper_says():
    torch.manual_seed(1)
    prior = torch.tensor([0.7, 0.2, 0.1])
    logits = torch.randn(5, 3, requires_grad=True)
    det = torch.randn(5, requires_grad=True)
    gamma = torch.randn(5, 3, requires_grad=True)
    targets = torch.tensor([0, 2, 1, -1, -1])
    is_aux = targets < 0
    terms = ImOODRegulariser(prior, tau=1.0)(logits, det, gamma, targets, is_aux)
    # The BCE trains the detector logit only; the hinge trains the gamma head only; the
    # posterior of outliers is detached, so the classifier logits get no gradient here.
    (g_det_bce,) = torch.autograd.grad(terms["bce"], det, retain_graph=True)
    assert g_det_bce.abs().sum() > 0
    assert torch.autograd.grad(terms["bce"], gamma, retain_graph=True, allow_unused=True)[0] is None
    grads = torch.autograd.grad(terms["hinge"], [det, gamma, logits], allow_unused=True)
    assert grads[0] is None
    assert grads[2] is None
    # hinge + BCE by hand from the same beta:
    post = torch.where(
        is_aux[:, None],
        logits.detach().softmax(1),
        0.8 * F.one_hot(targets.clamp_min(0), 3) + 0.2 / 3,
    )
    beta = (gamma.detach().exp().clamp_min(1e-4) * post / prior).mean(1)
    hinge = (beta.log() + F.logsigmoid(det.detach())).relu().mean()
    assert terms["hinge"].item() == pytest.approx(hinge.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="smoothing"):
        ImOODRegulariser(prior, smoothing=1.0)
