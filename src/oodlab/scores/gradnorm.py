"""GradNorm: L1 norm of the last-layer weight gradient of a uniform-target loss, negated."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.scores._stream import row_chunks
from oodlab.scores.base import Score, head_features, register_score, require_head
from oodlab.types import Outputs


def gradnorm_norm(
    features: Tensor,
    weight: Tensor,
    bias: Tensor,
    *,
    kl_uniform: bool = False,
    logits: Tensor | None = None,
) -> Tensor:
    """Per-sample ``Σ_ij |∂L/∂W_ij|`` ``(N,)`` in float64 (the GradNorm quantity, higher = ID).

    With ``L = Σ_k −log softmax(Wh + b)_k`` (cross-entropy against an all-ones target, the
    default) ``∂L/∂W = (C·p − 1) hᵀ`` where ``p = softmax(Wh + b)``, so the entry-wise L1 norm
    factorises as ``(Σ_k |C·p_k − 1|) · (Σ_j |h_j|)``: no backward pass is needed. With
    ``kl_uniform=True``, ``L = KL(u ‖ p)`` with ``u = 1/C``: ``∂L/∂W = (p − u) hᵀ``, exactly
    ``1/C`` times the default norm. Temperature 1 (the paper's and OpenOOD's choice).
    ``logits``: the cached ``Wh + b`` (the model's own logits when ``h`` is the head's input),
    used instead of recomputing them. Computed in row chunks, in float64 per chunk.
    """
    num_classes = weight.shape[0]
    out = []
    start = 0
    for block in row_chunks(features):
        rows = slice(start, start + len(block))
        start += len(block)
        if logits is not None:
            z = logits[rows].double()
        else:
            z = block.double() @ weight.double().T.to(block.device) + bias.double().to(block.device)
        probs = torch.softmax(z, dim=1)
        out.append((num_classes * probs - 1).abs().sum(1) * block.double().abs().sum(1))
    norm = torch.cat(out) if out else torch.zeros(0, dtype=torch.float64, device=features.device)
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

    The closed form of :func:`gradnorm`; no backward pass, no hyper-parameter. The softmax is
    taken of the cached logits (equal to ``Wh + b`` for a linear head on ``h``), so no float64
    copy of ``h @ Wᵀ`` is made.
    """

    def score(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "gradnorm")
        return -gradnorm_norm(head_features(outputs), weight, bias, logits=outputs.logits).float()
