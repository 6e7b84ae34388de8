"""ODIN: temperature-scaled MSP of an input nudged towards higher confidence, negated."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from oodlab.scores._input_grad import (
    check_input_std,
    max_softmax_score,
    per_channel,
    self_labelled_ce_gradient,
    signed,
)
from oodlab.scores.base import InputGradientScore, register_score, require_positive


def odin(
    model: nn.Module,
    x: Tensor,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    input_std: Sequence[float] | None = None,
) -> Tensor:
    """``−max softmax(f(x̃)/T)`` with ``x̃ = x − ε·sign(∇_x CE(f(x)/T, ŷ)) / σ``; higher = more OOD.

    Reference:
        Liang, Li & Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection
        in Neural Networks", ICLR 2018, arXiv:1706.02690, Eq. 1–2. The paper's score is the
        maximum softmax (higher = more ID); oodlab returns its negation.

    Args:
        model: maps ``x`` to logits.
        x: input batch ``(N, ...)``; not modified.
        temperature: ``T``.
        epsilon: perturbation magnitude ``ε`` (in the units of the unnormalised input when
            ``input_std`` is given).
        input_std: per-channel normalisation std ``σ`` to divide the step by (OpenOOD);
            ``None`` takes the step in the model's input space (the MOS repository).
    """
    step = signed(self_labelled_ce_gradient(model, x, temperature)) / per_channel(input_std, x)
    return max_softmax_score(model, x.detach() - epsilon * step, temperature)


@register_score(
    "odin",
    needs=("model", "input_grad"),
    paper="Liang, Li & Srikant, ICLR 2018, arXiv:1706.02690",
)
class ODIN(InputGradientScore):
    """ODIN (:func:`odin`); OpenOOD defaults ``T = 1000``, ``ε = 0.0014`` and its APS grid."""

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
        return odin(model, x, self.temperature, self.epsilon, self.input_std)
