"""i-ODIN: ODIN that perturbs only the single input element with the largest gradient."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from oodlab.scores._input_grad import (
    ASCOOD_EPSILON_GRID,
    TEMPERATURE_GRID,
    SignPerturbationScore,
    channel_std,
    max_softmax,
    self_labelled_ce_gradient,
    sign_with_zero_positive,
    validate_input_std,
)
from oodlab.scores.base import register_score


def largest_gradient_mask(grad: Tensor) -> Tensor:
    """A 0/1 tensor shaped like ``grad`` with one 1 per sample, at ``argmax |g|``.

    The argmax runs over all ``C·H·W`` elements of a sample; ties go to the first element
    in row-major order (``torch.argmax``).
    """
    flat = grad.reshape(grad.shape[0], -1)
    top = flat.abs().argmax(dim=1, keepdim=True)
    return torch.zeros_like(flat).scatter_(1, top, 1.0).reshape_as(grad)


def iodin(
    model: nn.Module,
    x: Tensor,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    input_std: Sequence[float] | None = None,
) -> Tensor:
    """ODIN's negated maximum softmax with the step on one element per sample; higher = more OOD.

    With ``g = ∇_x CE(f(x)/T, ŷ)`` and ``M`` the one-hot mask at ``argmax |g|`` over the
    ``C·H·W`` elements of each sample, ``x̃ = x − ε·(sign(g)/σ_ch) ⊙ M`` and the score is
    ``−max_k softmax(f(x̃)/T)_k``: exactly one scalar per sample moves, by ``ε/σ_ch`` in the
    direction ODIN moves it.

    Reference:
        Regmi, "Image-based Outlier Synthesis With Training Data" (first titled "Going Beyond
        Conventional OOD Detection"), CVPR 2026, arXiv:2411.10794, the i-ODIN post-processor
        (synthesis_and_mos.md §1.7, steps 1–6). The paper's score is the maximum softmax
        (higher = more ID); oodlab returns its negation.

    Args:
        model: maps ``x`` to logits ``(N, C)``; used as it is (eval mode).
        x: input batch ``(N, C, ...)`` (or ``(N, D)``); not modified.
        temperature: ``T``.
        epsilon: ``ε``; 0 gives the temperature-scaled MSP.
        input_std: per-channel std ``σ`` (or one value for all channels); ``None`` = 1.

    Notes:
        ``input_std=None`` means no division, exactly as for
        :func:`~oodlab.scores.odin.odin`, so that i-ODIN's step is always ODIN's step masked
        to one element. The official code divides a step on the *normalised* input by the
        dataset's std (0.5 for one it does not know), i.e. moves the pixel by ``ε``; oodlab's
        inputs are the pixels (the model normalises inside), so the undivided step is the
        official one (see :func:`~oodlab.scores.odin.odin`, "Units of ε").
        The gradient is that of the summed (not batch-mean) loss, as in ODIN; the argmax is
        unchanged by that scaling.
    """
    std = channel_std(validate_input_std(input_std), x)
    grad = self_labelled_ce_gradient(model, x, temperature)
    step = sign_with_zero_positive(grad) * largest_gradient_mask(grad) / std
    return -max_softmax(model, x.detach() - epsilon * step, temperature)


@register_score(
    "iodin",
    needs=("model", "input_grad"),
    paper="Regmi, CVPR 2026, arXiv:2411.10794 (i-ODIN)",
)
class IODIN(SignPerturbationScore):
    """i-ODIN (:func:`iodin`); defaults ``T = 1000``, ``ε = 0.0014`` (OpenOOD's ODIN); the
    ``search_space`` is the ASCOOD fork's (``T ∈ {1, 10, 100, 1000}`` × 7 values of ``ε``),
    whose parameter search produced its published i-ODIN numbers.

    Args:
        temperature: ``T > 0``.
        epsilon: ``ε ≥ 0``.
        input_std: per-channel std to divide the step by, or ``None`` (no division).
    """

    search_space: ClassVar[dict[str, Sequence[float]]] = {
        "temperature": TEMPERATURE_GRID,
        "epsilon": ASCOOD_EPSILON_GRID,
    }

    def score_inputs(self, model: nn.Module, x: Tensor) -> Tensor:
        return iodin(model, x, self.temperature, self.epsilon, self.input_std)
