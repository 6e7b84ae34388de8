"""ODIN: temperature-scaled MSP of an input nudged towards higher confidence, negated."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from oodlab.scores._input_grad import (
    SignPerturbationScore,
    channel_std,
    max_softmax,
    self_labelled_ce_gradient,
    sign_with_zero_positive,
    validate_input_std,
)
from oodlab.scores.base import register_score


def odin(
    model: nn.Module,
    x: Tensor,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    input_std: Sequence[float] | None = None,
) -> Tensor:
    """``−max_k softmax(f(x̃)/T)_k`` with ``x̃ = x − ε·sign(∇_x CE(f(x)/T, ŷ))/σ``; higher = more OOD.

    ``ŷ = argmax f(x)`` is the model's own prediction and ``sign(0) = +1``. The step lowers
    the cross-entropy of the predicted class, i.e. raises the maximum softmax, and it does
    so more for ID than for OOD inputs.

    Reference:
        Liang, Li & Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection
        in Neural Networks", ICLR 2018, arXiv:1706.02690, Eq. 1 (temperature scaling) and
        Eq. 2 (input pre-processing, ``x̃ = x − ε·sign(−∇_x log S_ŷ(x; T))``). The paper's score
        is the maximum softmax (higher = more ID); oodlab returns its negation.

    Args:
        model: maps ``x`` to logits ``(N, C)`` (``model(x) == head(features(x))``); used as
            it is (put it in eval mode first, as for any evaluation).
        x: input batch ``(N, C, ...)`` (or ``(N, D)``); not modified.
        temperature: ``T``.
        epsilon: ``ε``; 0 gives the temperature-scaled MSP.
        input_std: per-channel std ``σ`` (or one value for all channels); ``None`` = 1.

    Notes:
        * The gradient is that of the *sum* of per-sample losses, so every sample gets its
          own gradient whatever the batch; OpenOOD and the official code differentiate the
          batch *mean*, which has the same sign except where ``1/N`` underflows to zero.
        * **Units of ε.** OpenOOD (and the ODIN code) perturb the *normalised* input
          ``x_n = (x − m)/σ`` by ``ε·sign(g)/σ``, i.e. the image in pixel units by exactly
          ``ε·sign(g)`` (0.5 for an unknown dataset is also the std its preprocessor then
          normalises with, so the pixel step is ``ε`` there too). oodlab feeds models
          images in ``[0, 1]`` and models normalise inside (``model.mean``/``model.std``,
          :func:`oodlab.models.input_normalization`), so ``x`` here *is* the pixel image and
          the undivided step ``ε·sign(∇_x)`` is OpenOOD's step, for every model (``sign``
          of the pixel gradient = ``sign`` of the normalised-input gradient, ``σ > 0``).
          Dividing by the model's own std would apply it twice (4× OpenOOD's step on CIFAR).
          ``input_std`` is for inputs normalised *before* the model (a data pipeline of your
          own): pass that std to keep ``ε`` in pixel units. Checked against a transcription
          of OpenOOD's procedure in ``tests/scores/test_odin.py``. The MOS repository does
          not divide (and ships ``ε = 0``).
    """
    std = channel_std(validate_input_std(input_std), x)
    grad = self_labelled_ce_gradient(model, x, temperature)
    x_tilde = x.detach() - epsilon * sign_with_zero_positive(grad) / std
    return -max_softmax(model, x_tilde, temperature)


@register_score(
    "odin",
    needs=("model", "input_grad"),
    paper="Liang, Li & Srikant, ICLR 2018, arXiv:1706.02690",
)
class ODIN(SignPerturbationScore):
    """ODIN (:func:`odin`) with OpenOOD's defaults ``T = 1000``, ``ε = 0.0014`` and its APS
    grid ``T ∈ {1, 10, 100, 1000}`` × ``ε ∈ {0.0014, 0.0028}`` (``odin.yml``).

    Args:
        temperature: ``T > 0``.
        epsilon: ``ε ≥ 0`` in pixel units (the MOS repository's baseline uses ``ε = 0``).
        input_std: std of a normalisation applied to the inputs *before* the model, to keep
            ``ε`` in pixel units; ``None`` (default) for oodlab's ``[0, 1]`` inputs, which
            already gives OpenOOD's step (see :func:`odin`).
    """

    def score_inputs(self, model: nn.Module, x: Tensor) -> Tensor:
        return odin(model, x, self.temperature, self.epsilon, self.input_std)
