"""PATT's pieces: the log-Bessel function and its gradient against mpmath, the ProCo logit
against the p = 3 closed form and a Monte-Carlo estimate, the running means, TLA."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
import torch.nn.functional as F

from oodlab.errors import ConfigError
from oodlab.losses.oe import outlier_exposure
from oodlab.losses.patt import (
    PATTLoss,
    ProCoLoss,
    log_bessel_iv,
    log_vmf_term,
    temperature_scaled_la,
    vmf_concentration,
)

mpmath.mp.dps = 40


@pytest.mark.parametrize("order", [0.5, 7.0, 63.0, 255.0, 511.0])
def test_log_bessel_matches_mpmath_where_plain_bessel_overflows(order):
    xs = [1e-2, 0.5, 3.0, 40.0, 255.0, 2000.0, 1e5]
    got = log_bessel_iv(order, torch.tensor(xs, dtype=torch.float64))
    for x, value in zip(xs, got.tolist(), strict=True):
        ref = float(mpmath.log(mpmath.besseli(order, x)))
        assert value == pytest.approx(ref, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("dim", [3, 128, 512])
def test_gradient_is_the_bessel_ratio(dim):
    order = dim / 2 - 1
    kappa = torch.tensor([0.3, 5.0, 300.0, 5e4], dtype=torch.float64, requires_grad=True)
    log_vmf_term(kappa, dim).sum().backward()
    for k, grad in zip(kappa.tolist(), kappa.grad.tolist(), strict=True):
        ratio = float(mpmath.besseli(order + 1, k) / mpmath.besseli(order, k))
        assert grad == pytest.approx(ratio, rel=1e-8)
        assert 0 < grad <= 1


def test_proco_logit_is_the_vmf_expectation_in_three_dimensions():
    # p = 3: C_3(k) = k / (4 pi sinh k); E_{z'~vMF(mu, k)} exp(z.z'/tau) = C_3(k) / C_3(k~).
    torch.manual_seed(0)
    loss = ProCoLoss(2, 3, torch.tensor([0.5, 0.5]), temperature=2.0, normalize=False)
    loss.means.copy_(torch.tensor([[0.6, 0.0, 0.0], [0.0, -0.3, 0.4]]))
    z = torch.tensor([[0.5, 1.0, -0.5]])
    o = loss.logits(z)[0].double()
    kappa = vmf_concentration(loss.means, 3)
    mu = F.normalize(loss.means.double(), dim=1)
    u = F.normalize(torch.randn(400_000, 3, dtype=torch.float64), dim=1)  # uniform on S^2
    for c in range(2):
        k = float(kappa[c])
        a = k * mu[c] + z[0].double() / 2.0
        kt = float(a.norm())
        closed = math.log(k / math.sinh(k)) - math.log(kt / math.sinh(kt))
        assert o[c].item() == pytest.approx(closed, rel=1e-6)
        mc = k / (4 * math.pi * math.sinh(k)) * 4 * math.pi * torch.exp(u @ a).mean().item()
        assert math.exp(o[c].item()) == pytest.approx(mc, rel=0.02)


def test_large_concentration_gives_the_prototype_dot_product():
    loss = ProCoLoss(2, 64, torch.tensor([0.5, 0.5]), temperature=0.1, normalize=False)
    loss.means.copy_(torch.zeros(2, 64))
    loss.means[0, 0], loss.means[1, 1] = 1.5, 1.5  # R > 1: kappa saturates at 1e5
    z = torch.zeros(1, 64)
    z[0, 0], z[0, 2] = 0.3, 0.2
    o = loss.logits(z)[0]
    # o = mu.z/tau * I_{nu+1}/I_nu(kappa) + O(|z|^2/kappa), the ratio ~ 1 - (2 nu + 1) / (2 kappa).
    ratio = 1 - 63 / 2e5
    torch.testing.assert_close(o, torch.tensor([3.0 * ratio, 0.0]), atol=1e-4, rtol=0)


def test_running_means_are_the_cumulative_class_means():
    torch.manual_seed(1)
    loss = ProCoLoss(3, 4, torch.tensor([0.5, 0.3, 0.2]), normalize=False)
    first = loss.means[2].clone()
    a, b = torch.randn(5, 4), torch.randn(3, 4)
    ya, yb = torch.tensor([0, 0, 1, 0, 1]), torch.tensor([1, 0, 0])
    loss.update(a, ya)
    loss.update(b, yb)
    allz, ally = torch.cat([a, b]), torch.cat([ya, yb])
    for c in (0, 1):
        torch.testing.assert_close(loss.means[c], allz[ally == c].mean(0))
    torch.testing.assert_close(loss.means[2], first)  # unseen class keeps its start
    assert loss.counts.tolist() == [5.0, 3.0, 0.0]


def test_proco_loss_is_logit_adjusted_ce_of_the_dense_formula():
    torch.manual_seed(2)
    prior = torch.tensor([0.6, 0.3, 0.1])
    loss = ProCoLoss(3, 16, prior, temperature=0.1)
    z, y = torch.randn(6, 16), torch.tensor([0, 1, 2, 0, 1, 0])
    got = loss(z, y)
    zn = F.normalize(z, dim=1).double()
    kappa = vmf_concentration(loss.means, 16)
    mu = F.normalize(loss.means.double(), dim=1)
    dense = (kappa[None, :, None] * mu[None] + zn[:, None] / 0.1).norm(dim=2)  # N x C x p
    o = log_vmf_term(dense, 16) - log_vmf_term(kappa, 16)
    expected = F.cross_entropy(o + torch.log(prior.double()), y)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_patt_loss_and_tla():
    torch.manual_seed(3)
    prior = torch.tensor([0.5, 0.3, 0.2])
    logits, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    tla = temperature_scaled_la(logits, y, prior.log(), 0.9)
    assert tla.item() == pytest.approx(
        F.cross_entropy(logits / 0.9 + prior.log(), y).item(), rel=1e-6
    )
    patt = PATTLoss(3, 8, prior, oe_weight=0.1, tla_weight=0.5)
    z2, z3, aux = torch.randn(4, 8), torch.randn(4, 8), torch.randn(5, 3)
    twin = ProCoLoss(3, 8, prior)
    twin.means.copy_(patt.proco.means)
    isac = 0.5 * (twin(z2, y) + twin(z3, y))
    got = patt(logits, z2, z3, y, aux)
    expected = isac + 0.5 * tla + 0.1 * outlier_exposure(aux)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="T_s"):
        PATTLoss(3, 8, prior, tla_scale=0.0)
