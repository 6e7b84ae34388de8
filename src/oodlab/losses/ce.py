"""Cross-entropy, optionally logit-adjusted by the class prior."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss


@register_loss(
    "ce", paper="cross-entropy; logit adjustment: Menon et al., ICLR 2021, arXiv:2007.07314"
)
class CrossEntropy(nn.Module):
    """``CE(f(x) + τ · log π, y)``; ``τ = 0`` is plain cross-entropy.

    Reference:
        Menon, Jayasumana, Rawat, Jain, Veit & Kumar, "Long-tail learning via logit
        adjustment", ICLR 2021, arXiv:2007.07314, Eq. 10 (the logit-adjusted loss). At test
        time the raw logits are used.

    Args:
        prior: class prior ``π`` ``(C,)`` from the long-tailed training counts (needed if τ > 0).
        tau: adjustment strength ``τ``.
    """

    adjustment: Tensor

    def __init__(self, prior: Tensor | None = None, tau: float = 0.0) -> None:
        super().__init__()
        if tau != 0 and prior is None:
            raise ConfigError("logit adjustment (tau != 0) needs the class prior of the run")
        adjustment = (
            torch.zeros(1) if prior is None else tau * torch.log(prior.double() + 1e-12).float()
        )
        self.register_buffer("adjustment", adjustment)
        self.tau = tau

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.cross_entropy(logits + self.adjustment, targets)
