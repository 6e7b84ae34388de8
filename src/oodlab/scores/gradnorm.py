"""GradNorm: L1 norm of the last-layer weight gradient of the KL to uniform, negated."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.scores.base import Score, register_score, require_head
from oodlab.types import Outputs


def gradnorm(features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``−Σ_ij |∂L/∂W_ij|`` per sample, ``L = Σ_k −log softmax(Wh + b)_k``; higher = more OOD.

    Closed form: ``∂L/∂W = (C·p − 1) hᵀ`` with ``p = softmax(Wh + b)``, whose entry-wise L1
    norm factorises as ``(Σ_k |C·p_k − 1|) · (Σ_j |h_j|)``; no backward pass is needed.

    Reference:
        Huang, Geng & Li, "On the Importance of Gradients for Detecting Distributional Shifts
        in the Wild", NeurIPS 2021, arXiv:2110.00218, Eq. 3–5 (T = 1). The paper's score is the
        gradient norm (higher = more ID); oodlab returns its negation.

    Notes:
        Follows OpenOOD (synthesis_and_mos.md §4.10): cross-entropy against an all-ones
        target, i.e. ``C`` times the paper's KL to the uniform distribution up to a constant,
        so the norm is ``C`` times the paper's; rankings are identical.
    """
    features = features.double()
    probs = torch.softmax(features @ weight.double().T + bias.double(), dim=1)
    num_classes = weight.shape[0]
    norm = (num_classes * probs - 1).abs().sum(1) * features.abs().sum(1)
    return -norm.float()


@register_score(
    "gradnorm",
    needs=("features", "head_weight"),
    paper="Huang, Geng & Li, NeurIPS 2021, arXiv:2110.00218",
)
class GradNorm(Score):
    """GradNorm from cached features and the linear head (closed form): :func:`gradnorm`."""

    def score(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "gradnorm")
        return gradnorm(outputs.features, weight, bias)
