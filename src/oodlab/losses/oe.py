"""Outlier Exposure: cross-entropy from the softmax to the uniform distribution on outliers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.losses.base import register_loss


def outlier_exposure(logits: Tensor) -> Tensor:
    """``mean_x [LSE(f(x)) − mean_c f_c(x)]`` over outlier logits ``(N, C)``.

    Reference:
        Hendrycks, Mazeika & Dietterich, "Deep Anomaly Detection with Outlier Exposure",
        ICLR 2019, arXiv:1812.04606, Sec. 4 (the cross-entropy to the uniform distribution);
        identical in PASCL, ImOOD and PATT (long_tailed.md §4.4).
    """
    return (torch.logsumexp(logits, dim=1) - logits.mean(dim=1)).mean()


@register_loss("oe", paper="Hendrycks et al., ICLR 2019, arXiv:1812.04606")
class OELoss(nn.Module):
    """``CE(f(x_id), y) + λ · OE(f(x_aux))`` on a batch whose rows ``is_aux`` are outliers.

    Args:
        weight: ``λ`` (0.5 in PASCL and ImOOD, 0.1 in PATT's CIFAR setting).
    """

    def __init__(self, weight: float = 0.5) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, logits: Tensor, targets: Tensor, is_aux: Tensor) -> Tensor:
        ce = nn.functional.cross_entropy(logits[~is_aux], targets[~is_aux])
        if not is_aux.any():
            return ce
        return ce + self.weight * outlier_exposure(logits[is_aux])
