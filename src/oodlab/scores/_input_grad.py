"""Input-perturbation maths shared by ODIN and i-ODIN (one copy of each helper).

Both scores take the gradient of the self-labelled, temperature-scaled cross-entropy
with respect to the input, step against its sign (``sign(0) = +1``), optionally
divided by the per-channel normalisation std, and read the maximum softmax of the
perturbed input. They differ only in which input elements the step touches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oodlab.errors import ConfigError, DataError
from oodlab.scores.base import InputGradientScore, require_positive

#: OpenOOD v1.5's ODIN grid (``configs/postprocessors/odin.yml``, synthesis_and_mos.md §2.2
#: of peers.md): ``T ∈ {1, 10, 100, 1000}`` × ``ε ∈ {0.0014, 0.0028}``.
TEMPERATURE_GRID = (1.0, 10.0, 100.0, 1000.0)
EPSILON_GRID = (0.0014, 0.0028)
#: The ASCOOD fork's i-ODIN grid (its ``iodin.yml``, synthesis_and_mos.md §1.7): the same
#: temperatures × ``ε ∈ 0.0014 · {1, …, 7}``; OpenOOD itself has no i-ODIN.
ASCOOD_EPSILON_GRID = (0.0014, 0.0028, 0.0042, 0.0056, 0.0070, 0.0084, 0.0098)


def validate_input_std(input_std: Sequence[float] | None) -> tuple[float, ...] | None:
    """``input_std`` as a tuple of positive finite floats (or ``None``); else ``ConfigError``."""
    if input_std is None:
        return None
    if isinstance(input_std, str | bytes) or not isinstance(input_std, Sequence):
        raise ConfigError(
            f"input_std must be a sequence of per-channel stds (e.g. (0.247, 0.243, 0.261)) "
            f"or None, got {input_std!r}"
        )
    if len(input_std) == 0:
        raise ConfigError("input_std must hold at least one std (one per input channel) or be None")
    for i, value in enumerate(input_std):
        require_positive(f"input_std[{i}]", value)
        if not math.isfinite(value):
            raise ConfigError(f"input_std[{i}] must be finite, got {value!r}")
    return tuple(float(value) for value in input_std)


def channel_std(input_std: tuple[float, ...] | None, x: Tensor) -> Tensor:
    """The per-channel std as a tensor broadcastable to ``x`` ``(N, C, ...)``; 1 when ``None``.

    One value applies to every channel; otherwise there must be one per channel ``x.shape[1]``.
    """
    if input_std is None:
        return torch.ones((), dtype=x.dtype, device=x.device)
    if x.ndim < 2:
        raise DataError(f"inputs must be batched (N, C, ...), got shape {tuple(x.shape)}")
    if len(input_std) not in (1, x.shape[1]):
        raise DataError(
            f"input_std has {len(input_std)} values but the inputs have {x.shape[1]} channels; "
            "give one std per channel (or a single std for all)"
        )
    std = torch.tensor(input_std, dtype=x.dtype, device=x.device)
    return std.reshape(1, -1, *([1] * (x.ndim - 2)))


def self_labelled_ce_gradient(model: nn.Module, x: Tensor, temperature: float) -> Tensor:
    """``∇_x CE(f(x)/T, ŷ)`` with ``ŷ = argmax f(x)``, one gradient per sample.

    The loss is the *sum* of the per-sample losses, so each sample's gradient is exactly
    its own (no ``1/N`` factor that could underflow to a zero gradient in float32, and no
    dependence on the batch). Only ``x`` is differentiated: model parameters get no
    ``.grad``; ``x`` itself is not modified; the model's train/eval mode is left as it is.
    """
    if torch.is_inference_mode_enabled():
        raise DataError(
            "input-gradient scores (ODIN, i-ODIN) cannot run under torch.inference_mode(); "
            "call them outside it (torch.no_grad() is fine)"
        )
    x_var = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_var)
        if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise DataError(
                f"the model must map a batch of {x.shape[0]} inputs to (N, C) logits, "
                f"got shape {tuple(logits.shape)}"
            )
        predicted = logits.detach().argmax(dim=1)
        scaled = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
        loss = F.cross_entropy(scaled, predicted, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_var)
    return grad


def sign_with_zero_positive(grad: Tensor) -> Tensor:
    """``sign(g)`` with ``sign(0) = +1`` (ODIN's ``g ≥ 0 → +1`` convention, spec §4.2)."""
    return torch.where(grad >= 0, 1.0, -1.0).to(grad.dtype)


def max_softmax(model: nn.Module, x: Tensor, temperature: float) -> Tensor:
    """``max_k softmax(f(x)/T)_k`` (higher = more ID), without building a graph."""
    with torch.no_grad():
        return torch.softmax(model(x).float() / temperature, dim=1).amax(dim=1)


class SignPerturbationScore(InputGradientScore):
    """Shared constructor of ODIN and i-ODIN: hyper-parameters ``T``, ``ε``, ``input_std``.

    Args:
        temperature: softmax temperature ``T > 0`` (OpenOOD default 1000).
        epsilon: step size ``ε ≥ 0`` (OpenOOD default 0.0014).
        input_std: per-channel std ``σ`` of a normalisation applied *before* the model; the
            step is divided by it so that ``ε`` stays in pixel units (OpenOOD). ``None``
            divides by nothing: ``ε`` in the model's input units, which are pixels for
            oodlab's ``[0, 1]`` inputs (the model normalises inside), i.e. OpenOOD's step.
    """

    search_space: ClassVar[dict[str, Sequence[float]]] = {
        "temperature": TEMPERATURE_GRID,
        "epsilon": EPSILON_GRID,
    }

    def __init__(
        self,
        temperature: float = 1000.0,
        epsilon: float = 0.0014,
        input_std: Sequence[float] | None = None,
    ) -> None:
        require_positive("temperature", temperature)
        require_positive("epsilon", epsilon, allow_zero=True)
        self.temperature = temperature
        self.epsilon = epsilon
        self.input_std = validate_input_std(input_std)
