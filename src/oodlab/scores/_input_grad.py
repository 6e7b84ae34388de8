"""Input perturbation shared by ODIN and i-ODIN: the gradient of the self-labelled CE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError


def self_labelled_ce_gradient(model: nn.Module, x: Tensor, temperature: float) -> Tensor:
    """``∇_x CE(f(x)/T, ŷ)`` with ``ŷ = argmax f(x)``, per sample (the loss is summed over the
    batch, so each sample's gradient is its own); model parameters get no gradient."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits / temperature, logits.argmax(1), reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def check_input_std(input_std: Sequence[float] | None) -> None:
    """Raise ``ConfigError`` unless ``input_std`` is None or positive per-channel values."""
    if input_std is not None and (len(input_std) == 0 or any(s <= 0 for s in input_std)):
        raise ConfigError(f"input_std must be positive per-channel stds or None, got {input_std!r}")


def signed(grad: Tensor) -> Tensor:
    """``sign(g)`` with ``sign(0) = +1`` (ODIN's convention, synthesis_and_mos.md §4.2)."""
    return torch.where(grad >= 0, 1.0, -1.0).to(grad.dtype)


def per_channel(values: Sequence[float] | None, x: Tensor) -> Tensor | float:
    """A per-channel tensor broadcastable to ``x`` ``(N, C, ...)``, or 1 when ``values`` is None."""
    if values is None:
        return 1.0
    tensor = torch.as_tensor(list(values), dtype=x.dtype, device=x.device)
    return tensor.reshape(1, -1, *([1] * (x.ndim - 2)))


def max_softmax_score(model: nn.Module, x: Tensor, temperature: float) -> Tensor:
    """``−max softmax(f(x)/T)``; higher = more OOD."""
    with torch.no_grad():
        return -torch.softmax(model(x).float() / temperature, dim=1).amax(dim=1)
