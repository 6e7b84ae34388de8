"""ODIN and i-ODIN against identities and gradients computed independently."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oodlab.scores.iodin import iodin
from oodlab.scores.msp import msp
from oodlab.scores.odin import odin


def explicit_gradient(model, x, temperature):
    """d/dx of -log softmax(f(x)/T)[argmax f(x)], written out with log-sum-exp."""
    x = x.clone().requires_grad_(True)
    logits = model(x) / temperature
    label = logits.argmax(1)
    loss = (torch.logsumexp(logits, 1) - logits.gather(1, label[:, None]).squeeze(1)).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def test_odin_without_perturbation_is_temperature_scaled_msp(toy):
    with torch.no_grad():
        logits = toy.model(toy.x_id)
    torch.testing.assert_close(odin(toy.model, toy.x_id, 1.0, 0.0), msp(logits))
    torch.testing.assert_close(odin(toy.model, toy.x_id, 10.0, 0.0), msp(logits / 10))


def test_odin_perturbs_against_the_gradient_and_raises_confidence(toy):
    x, eps, t = toy.x_ood[:10], 0.05, 2.0
    grad = explicit_gradient(toy.model, x, t)
    x_tilde = x - eps * torch.where(grad >= 0, 1.0, -1.0)
    with torch.no_grad():
        expected = -F.softmax(toy.model(x_tilde) / t, dim=1).amax(1)
    torch.testing.assert_close(odin(toy.model, x, t, eps), expected)
    # The step raises the maximum softmax (lowers the OOD score) of every sample.
    assert (odin(toy.model, x, t, eps) < odin(toy.model, x, t, 0.0)).all()
    # The input is untouched and the model gets no parameter gradient.
    assert all(p.grad is None for p in toy.model.parameters())


def test_odin_divides_the_step_by_the_input_std():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 3))
    x = torch.randn(4, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    std = [0.5, 0.25]
    grad = explicit_gradient(model, x, 1.0)
    step = torch.where(grad >= 0, 1.0, -1.0) / torch.tensor(std).reshape(1, 2, 1, 1)
    with torch.no_grad():
        expected = -F.softmax(model(x - 0.01 * step), 1).amax(1)
    torch.testing.assert_close(odin(model, x, 1.0, 0.01, std), expected)


def test_iodin_changes_exactly_the_element_of_largest_gradient(toy):
    x, eps, t = toy.x_ood[:8], 0.3, 5.0
    grad = explicit_gradient(toy.model, x, t)
    top = grad.abs().argmax(1)
    x_tilde = x.clone()
    rows = torch.arange(len(x))
    # input_std=None divides by 0.5, the official value for an unknown dataset.
    x_tilde[rows, top] -= eps * torch.where(grad[rows, top] >= 0, 1.0, -1.0) / 0.5
    assert ((x_tilde != x).sum(1) == 1).all()
    with torch.no_grad():
        expected = -F.softmax(toy.model(x_tilde) / t, dim=1).amax(1)
    torch.testing.assert_close(iodin(toy.model, x, t, eps), expected)
    torch.testing.assert_close(iodin(toy.model, x, 1.0, 0.0), odin(toy.model, x, 1.0, 0.0))
