"""GradNorm: L1 norm of the last-layer weight gradient of a uniform-target loss, negated."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.scores.base import Score, head_features, register_score, require_head
from oodlab.types import Outputs


def gradnorm_norm(
    features: Tensor, weight: Tensor, bias: Tensor, *, kl_uniform: bool = False
) -> Tensor:
    """Per-sample ``Σ_ij |∂L/∂W_ij|`` ``(N,)`` in float64 (the GradNorm quantity, higher = ID).

    With ``L = Σ_k −log softmax(Wh + b)_k`` (cross-entropy against an all-ones target, the
    default) ``∂L/∂W = (C·p − 1) hᵀ`` where ``p = softmax(Wh + b)``, so the entry-wise L1 norm
    factorises as ``(Σ_k |C·p_k − 1|) · (Σ_j |h_j|)``: no backward pass is needed. With
    ``kl_uniform=True``, ``L = KL(u ‖ p)`` with ``u = 1/C``: ``∂L/∂W = (p − u) hᵀ``, exactly
    ``1/C`` times the default norm. Temperature 1 (the paper's and OpenOOD's choice).
    """
    features = features.double()
    probs = torch.softmax(features @ weight.double().T + bias.double(), dim=1)
    num_classes = weight.shape[0]
    norm = (num_classes * probs - 1).abs().sum(1) * features.abs().sum(1)
    return norm / num_classes if kl_uniform else norm


def gradnorm(features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``−Σ_ij |∂L/∂W_ij|`` per sample, ``L = Σ_k −log softmax(Wh + b)_k``; higher = more OOD.

    Args:
        features: ``(N, D)`` the linear head's input ``h`` (for ASCOOD the z-scored features,
            so the closed form is the gradient of the model's own fc;
            :func:`~oodlab.scores.base.head_features`).
        weight: ``(C, D)`` weight ``W`` of the linear head.
        bias: ``(C,)`` bias ``b`` of the linear head.

    Returns:
        ``(N,)`` float32 negated gradient norm, from the closed form of :func:`gradnorm_norm`.

    Reference:
        Huang, Geng & Li, "On the Importance of Gradients for Detecting Distributional Shifts
        in the Wild", NeurIPS 2021, arXiv:2110.00218, Eq. 3–5 (T = 1). The paper's score
        ``S(x) = ‖∂ D_KL(u ‖ softmax(f(x)/T)) / ∂w‖₁`` is higher for ID; it is negated here.

    Notes:
        The official code and OpenOOD (synthesis_and_mos.md §4.10) take the gradient of the
        cross-entropy against an all-ones target, ``C·KL(u ‖ p)`` up to a constant; oodlab
        follows them, so the norm is ``C`` times the one of the paper's Eq. 3 (same ranking).
        Only the weight gradient counts, not the bias gradient.
    """
    return -gradnorm_norm(features, weight, bias).float()


@register_score(
    "gradnorm",
    needs=("features", "head_weight"),
    paper="Huang, Geng & Li, NeurIPS 2021, arXiv:2110.00218",
)
class GradNorm(Score):
    """Negated GradNorm from cached features and the linear head; higher = more OOD.

    The closed form of :func:`gradnorm`; no backward pass, no hyper-parameter.
    """

    def score(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "gradnorm")
        return gradnorm(head_features(outputs), weight, bias)
