"""Binary ID-vs-outlier discrimination on an extra logit (the ImOOD ``bin_disc`` baseline)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.losses.base import register_loss


def binary_discrimination(id_logit: Tensor, aux_logit: Tensor) -> Tensor:
    """``BCE(σ(g), 1)`` on ID and ``BCE(σ(g), 0)`` on outliers, averaged over all samples.

    Reference:
        Liu et al. (ImOOD), "Rethinking Out-of-Distribution Detection on Imbalanced Data
        Distribution", NeurIPS 2024, arXiv:2407.16430, Sec. 3 (the discriminator ``σ(g) =
        P(ID | x)``) and the official ``bin_disc`` loss (long_tailed.md §2.5).
    """
    logits = torch.cat([id_logit, aux_logit])
    targets = torch.cat([torch.ones_like(id_logit), torch.zeros_like(aux_logit)])
    return nn.functional.binary_cross_entropy_with_logits(logits, targets)


@register_loss("bin_disc", paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430")
class BinDiscLoss(nn.Module):
    """``CE(f(x_id), y) + λ · binary_discrimination(g)`` with ``is_aux`` marking outliers.

    Args:
        weight: ``λ`` (0.5, as the ImOOD baselines).
    """

    def __init__(self, weight: float = 0.5) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, logits: Tensor, bin_logit: Tensor, targets: Tensor, is_aux: Tensor) -> Tensor:
        ce = nn.functional.cross_entropy(logits[~is_aux], targets[~is_aux])
        return ce + self.weight * binary_discrimination(bin_logit[~is_aux], bin_logit[is_aux])
