"""NPOS losses against independent computations: per-sample EMA loop, the dispersion and
compactness formulas written out, BCE by hand, LogitNorm by hand; and where gradients go."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodlab.errors import ConfigError
from oodlab.losses import LOSSES
from oodlab.losses.npos import (
    NPOSFeatureLoss,
    NPOSLoss,
    _ema_rounds,
    ema_prototypes,
    logitnorm_cross_entropy,
    prototype_compactness,
    prototype_dispersion,
    uncertainty_bce,
)

G = torch.Generator().manual_seed(0)
C, D = 3, 5
Z = F.normalize(torch.randn(8, D, generator=G, dtype=torch.float64), dim=1)
Y = torch.tensor([2, 0, 2, 2, 1, 0, 2, 1])
P0 = F.normalize(torch.randn(C, D, generator=G, dtype=torch.float64), dim=1)


def test_ema_matches_a_per_sample_loop():
    expected = P0.clone()
    for z, y in zip(Z, Y.tolist()):
        mixed = 0.9 * expected[y] + 0.1 * z
        expected[y] = mixed / mixed.norm()
    np_out = ema_prototypes(P0, Z, Y, 0.9)
    assert torch.allclose(np_out, expected, atol=1e-12)
    assert torch.equal(P0, P0.clone())  # input untouched


@pytest.mark.parametrize("labels", [Y, torch.tensor([1, 1, 1, 1, 1, 1, 1, 1]), Y[:0]])
def test_the_masked_ema_rounds_equal_the_row_selecting_loop(labels):
    # The masked rounds run on accelerators (one host sync); here both run on the CPU.
    z = Z[: len(labels)].clone().requires_grad_()
    loop = ema_prototypes(P0, z, labels, 0.9)
    masked = _ema_rounds(P0, z, labels, 0.9)
    torch.testing.assert_close(masked, loop, rtol=0, atol=1e-15)
    if len(labels):
        weights = torch.randn(C, D, generator=torch.Generator().manual_seed(1), dtype=Z.dtype)
        (grad_loop,) = torch.autograd.grad((loop * weights).sum(), z)
        (grad_masked,) = torch.autograd.grad((masked * weights).sum(), z)
        torch.testing.assert_close(grad_masked, grad_loop, rtol=0, atol=1e-15)


def test_dispersion_matches_the_written_out_formula():
    mu = P0
    total = 0.0
    for i in range(C):
        s = sum(math.exp(float(mu[i] @ mu[j]) / 0.1) for j in range(C) if j != i)
        total += math.log(s / (C - 1))
    expected = (0.1 / 0.1) * total / C
    assert prototype_dispersion(mu, 0.1, 0.1).item() == pytest.approx(expected, rel=1e-10)


def test_compactness_matches_the_written_out_formula():
    total = 0.0
    for z, y in zip(Z, Y.tolist()):
        logits = [float(z @ P0[c]) / 0.1 for c in range(C)]
        total += logits[y] - math.log(sum(math.exp(v) for v in logits))
    expected = -(0.1 / 0.07) * total / len(Z)
    got = prototype_compactness(Z, 3.0 * P0, Y, 0.1, 0.07)  # prototypes are re-normalised
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_uncertainty_bce_joint_and_balanced_by_hand():
    g_id = torch.tensor([2.0, -1.0, 0.5])
    g_ood = torch.tensor([-3.0, 1.0])

    def softplus(v: float) -> float:
        return math.log1p(math.exp(v))

    id_terms = [softplus(-v) for v in g_id.tolist()]  # -log σ(g)
    ood_terms = [softplus(v) for v in g_ood.tolist()]  # -log(1 - σ(g))
    joint = sum(id_terms + ood_terms) / 5
    balanced = 0.5 * (sum(id_terms) / 3 + sum(ood_terms) / 2)
    assert uncertainty_bce(g_id, g_ood).item() == pytest.approx(joint, rel=1e-6)
    assert uncertainty_bce(g_id, g_ood, balanced=True).item() == pytest.approx(balanced, rel=1e-6)


def test_logitnorm_by_hand_and_scale_invariance():
    logits = torch.tensor([[3.0, 4.0, 0.0], [1.0, -1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1, 2])
    total = 0.0
    for row, t in zip(logits, y.tolist()):
        scaled = (row / (row.norm() * 8.0)).tolist()
        total += -(scaled[t] - math.log(sum(math.exp(v) for v in scaled)))
    assert logitnorm_cross_entropy(logits, y, 8.0).item() == pytest.approx(total / 2, rel=1e-10)
    # The official batch-Frobenius scaling of the logits leaves the loss unchanged.
    assert logitnorm_cross_entropy(logits / 7.3, y, 8.0).item() == pytest.approx(total / 2)


def test_npos_loss_updates_prototypes_and_sends_gradients_where_intended():
    loss_fn = LOSSES.get("npos").factory(C, D, proto_momentum=0.5).double()
    loss_fn.init_prototypes(Z, Y)
    start = loss_fn.prototypes.clone()
    z = Z.clone().requires_grad_()
    g_id = torch.randn(8, dtype=torch.float64, requires_grad=True)
    g_ood = torch.randn(6, dtype=torch.float64, requires_grad=True)
    terms = loss_fn.terms(z, Y, g_id, g_ood)
    expected = 0.5 * terms["disp"] + 1.0 * terms["comp"] + 0.1 * terms["open"]
    assert terms["loss"].item() == pytest.approx(expected.item())
    assert torch.allclose(loss_fn.prototypes, ema_prototypes(start, Z, Y, 0.5))
    assert not loss_fn.prototypes.requires_grad
    terms["disp"].backward(retain_graph=True)  # through the batch's EMA contribution
    assert z.grad is not None
    assert z.grad.abs().sum() > 0
    terms["loss"].backward()
    assert g_id.grad is not None
    assert g_ood.grad is not None
    assert g_ood.grad.abs().min() > 0


def test_init_prototypes_are_normalised_class_means():
    loss_fn = NPOSLoss(C, D).double()
    loss_fn.init_prototypes(Z, Y)
    for c in range(C):
        mean = Z[c == Y].mean(0)
        assert torch.allclose(loss_fn.prototypes[c], mean / mean.norm())


def test_feature_loss_combines_logitnorm_and_open_term():
    logits = torch.randn(4, 3, generator=G, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    g_id, g_ood = torch.randn(4, generator=G), torch.randn(7, generator=G)
    terms = NPOSFeatureLoss(8.0, 0.1).terms(logits, y, g_id, g_ood)
    expected = logitnorm_cross_entropy(logits, y, 8.0) + 0.1 * uncertainty_bce(g_id, g_ood)
    assert terms["loss"].item() == pytest.approx(expected.item())
    terms["loss"].backward()
    assert logits.grad is not None
    assert logits.grad.abs().sum() > 0


def test_invalid_hyper_parameters_raise():
    with pytest.raises(ConfigError):
        NPOSLoss(C, D, proto_momentum=1.0)
    with pytest.raises(ConfigError):
        NPOSFeatureLoss(temperature=0.0)
