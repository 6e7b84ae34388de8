"""GradNorm's closed form against per-sample autograd on an ``nn.Linear``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oodlab.errors import DataError
from oodlab.scores.gradnorm import GradNorm, gradnorm, gradnorm_norm
from oodlab.types import Outputs


def autograd_norms(layer: torch.nn.Linear, features: torch.Tensor, kind: str) -> list[float]:
    """``Σ_ij |∂L/∂W_ij|`` for one sample at a time, by backpropagation (batch size 1)."""
    norms = []
    for h in features:
        layer.zero_grad()
        logits = layer(h[None])
        num_classes = logits.shape[1]
        if kind == "ce_ones":  # the official GradNorm code and OpenOOD
            loss = torch.sum(-torch.ones(1, num_classes) * F.log_softmax(logits, dim=1))
        else:  # KL(uniform || softmax), the paper's Eq. 3 and the ImOOD code
            uniform = torch.full((1, num_classes), 1 / num_classes)
            loss = F.kl_div(F.log_softmax(logits, dim=1), uniform, reduction="sum")
        loss.backward()
        norms.append(layer.weight.grad.abs().sum().item())
    return norms


@pytest.fixture
def layer_and_features():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4).double()
    features = torch.relu(torch.randn(7, 6, dtype=torch.float64)) * 3
    return layer, features


def test_closed_form_matches_autograd_and_is_negated(layer_and_features):
    layer, features = layer_and_features
    expected = autograd_norms(layer, features, "ce_ones")
    result = gradnorm(features, layer.weight.detach(), layer.bias.detach())
    assert result.tolist() == pytest.approx([-v for v in expected], rel=1e-5)


def test_kl_to_uniform_form_matches_autograd_and_is_one_over_c_of_the_default(layer_and_features):
    layer, features = layer_and_features
    expected = autograd_norms(layer, features, "kl_uniform")
    weight, bias = layer.weight.detach(), layer.bias.detach()
    kl = gradnorm_norm(features, weight, bias, kl_uniform=True)
    assert kl.tolist() == pytest.approx(expected, rel=1e-9)
    torch.testing.assert_close(kl * 4, gradnorm_norm(features, weight, bias))


def test_hand_worked_flat_logits_give_zero_and_a_one_hot_softmax_gives_the_maximum():
    weight = torch.zeros(3, 2, dtype=torch.float64)
    # Flat logits: C·p − 1 = 0 for every class, so the gradient vanishes.
    flat = gradnorm(torch.tensor([[1.0, 2.0]]), weight, torch.zeros(3))
    assert flat.item() == pytest.approx(0.0, abs=1e-12)
    # A (numerically) one-hot softmax: Σ_k |C p_k − 1| = (C − 1) + (C − 1)·1 = 2(C − 1) = 4,
    # times Σ_j |h_j| = 3, so the norm is 12.
    peaked = gradnorm(torch.tensor([[1.0, -2.0]]), weight, torch.tensor([100.0, 0.0, 0.0]))
    assert peaked.item() == pytest.approx(-12.0, rel=1e-6)


def test_class_uses_the_cached_head_and_needs_one(toy):
    expected = gradnorm(toy.ood.features, toy.ood.head_weight, toy.ood.head_bias)
    torch.testing.assert_close(GradNorm().score(toy.ood), expected)
    headless = Outputs(logits=toy.ood.logits, features=toy.ood.features, labels=toy.ood.labels)
    with pytest.raises(DataError, match="linear head"):
        GradNorm().score(headless)


def test_has_no_hyperparameters():
    # Stateless and parameter-free: nothing to tune, nothing that could be a no-op.
    assert GradNorm.param_names() == []
    assert GradNorm.search_space == {}
