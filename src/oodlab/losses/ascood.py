"""ASCOOD: cross-entropy on ID data plus w · KL(uniform ‖ softmax) on virtual outliers."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss


def uniform_kl(logits: Tensor) -> Tensor:
    """``KL(u ‖ softmax(ℓ))`` with ``u`` uniform over the ``K`` classes, averaged over rows.

    ``(1/N) Σ_i Σ_k (1/K)·[log(1/K) − log p_k(x_i)] = mean_i[−mean_k log p_k(x_i)] − log K``
    (PyTorch's ``kl_div(log p, u, reduction="batchmean")``); zero exactly at the uniform
    prediction. It differs from the OE loss only by the constant ``log K``.

    Reference:
        Regmi, "Image-based Outlier Synthesis With Training Data", CVPR 2026,
        arXiv:2411.10794, Sec. 3 (the uncertainty loss L_unc); synthesis_and_mos.md §1.5.
    """
    log_p = torch.log_softmax(logits.float(), dim=1)
    return (-log_p.mean(dim=1)).mean() - math.log(logits.shape[1])


@register_loss("ascood", paper="Regmi, CVPR 2026, arXiv:2411.10794 (ASCOOD)")
class ASCOODLoss(nn.Module):
    """``CE(ℓ(x), y) + w · KL(u ‖ softmax(ℓ(x′)))`` on a batch whose rows ``is_aux`` are the
    virtual outliers ``x′``.

    Reference:
        Regmi, "Image-based Outlier Synthesis With Training Data" (first titled "Going Beyond
        Conventional OOD Detection"), CVPR 2026, arXiv:2411.10794, Sec. 3, ``L = L_ID +
        w·L_unc``; synthesis_and_mos.md §1.5 (w = 1 by default; 5 for CIFAR-100, 0.1 for
        Waterbirds).

    Args:
        weight: ``w ≥ 0``.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise ConfigError(f"ASCOOD weight w must be >= 0, got {weight}")
        self.weight = weight

    def forward(self, logits: Tensor, targets: Tensor, is_aux: Tensor) -> Tensor:
        ce = nn.functional.cross_entropy(logits[~is_aux], targets[~is_aux])
        if not is_aux.any():
            return ce
        return ce + self.weight * uniform_kl(logits[is_aux])


__all__ = ["ASCOODLoss", "uniform_kl"]
