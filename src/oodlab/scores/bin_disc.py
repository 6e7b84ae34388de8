"""BinDisc: one minus the ID probability of a binary ID-vs-outlier discriminator logit."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.scores.base import Score, register_score, require_extra
from oodlab.types import Outputs


def bin_disc(bin_logit: Tensor) -> Tensor:
    """``1 − σ(g(x))`` for the discriminator logit ``g`` ``(N,)`` (``σ(g) = P(ID|x)``).

    Reference:
        Liu et al., "Rethinking Out-of-Distribution Detection on Imbalanced Data
        Distribution", NeurIPS 2024, arXiv:2407.16430, Sec. 4 (the BinDisc detector and the
        plain ``bin_disc`` test metric of the official code; long_tailed.md §2.6 (a)).
        Already higher = more OOD.
    """
    return 1 - torch.sigmoid(bin_logit.double().reshape(-1)).float()


@register_score(
    "bin_disc",
    needs=("extras:bin_logit",),
    paper="Liu et al., NeurIPS 2024, arXiv:2407.16430",
)
class BinDisc(Score):
    """Binary-discriminator score on the model's ``bin_logit`` output: :func:`bin_disc`."""

    def score(self, outputs: Outputs) -> Tensor:
        return bin_disc(require_extra(outputs, "bin_logit", "bin_disc"))
