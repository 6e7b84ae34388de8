"""i-ODIN: ODIN that perturbs only the single input element with the largest gradient."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oodlab.scores._input_grad import (
    check_input_std,
    max_softmax_score,
    per_channel,
    self_labelled_ce_gradient,
    signed,
)
from oodlab.scores.base import InputGradientScore, register_score, require_positive

UNKNOWN_STD = 0.5


def iodin(
    model: nn.Module,
    x: Tensor,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    input_std: Sequence[float] | None = None,
) -> Tensor:
    """ODIN's score with the step applied to one element per sample; higher = more OOD.

    With ``g = ∇_x CE(f(x)/T, ŷ)``, the element ``e = argmax |g|`` over all ``C·H·W`` input
    values of a sample moves by ``−ε·sign(g_e)/σ_c(e)``; every other element is unchanged.

    Reference:
        Regmi, "Going Beyond Conventional OOD Detection" (ASCOOD; later "Image-based Outlier
        Synthesis With Training Data"), arXiv:2411.10794, the i-ODIN post-processor;
        synthesis_and_mos.md §1.7. Negated maximum softmax, as :func:`~oodlab.scores.odin.odin`.

    Notes:
        ``input_std=None`` divides by 0.5, the official code's value for an unknown dataset.
    """
    grad = self_labelled_ce_gradient(model, x, temperature)
    flat = grad.reshape(len(x), -1)
    mask = torch.zeros_like(flat).scatter_(1, flat.abs().argmax(1, keepdim=True), 1.0)
    std = per_channel(input_std, x) if input_std is not None else UNKNOWN_STD
    step = signed(grad) * mask.reshape_as(grad) / std
    return max_softmax_score(model, x.detach() - epsilon * step, temperature)


@register_score(
    "iodin",
    needs=("model", "input_grad"),
    paper="Regmi, arXiv:2411.10794 (ASCOOD, i-ODIN)",
)
class IODIN(InputGradientScore):
    """i-ODIN (:func:`iodin`); defaults and grid as OpenOOD's ODIN."""

    search_space = {"temperature": (1.0, 10.0, 100.0, 1000.0), "epsilon": (0.0014, 0.0028)}

    def __init__(
        self,
        temperature: float = 1000.0,
        epsilon: float = 0.0014,
        input_std: Sequence[float] | None = None,
    ) -> None:
        require_positive("temperature", temperature)
        require_positive("epsilon", epsilon, allow_zero=True)
        check_input_std(input_std)
        self.temperature = temperature
        self.epsilon = epsilon
        self.input_std = input_std

    def score_inputs(self, model: nn.Module, x: Tensor) -> Tensor:
        return iodin(model, x, self.temperature, self.epsilon, self.input_std)
