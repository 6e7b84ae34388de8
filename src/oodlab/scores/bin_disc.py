"""BinDisc: one minus the ID probability of a binary ID-vs-outlier discriminator logit."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.errors import DataError
from oodlab.scores.base import Score, register_score, require_extra
from oodlab.types import Outputs


def bin_disc(bin_logit: Tensor) -> Tensor:
    """``1 − σ(g(x))`` for the discriminator logit ``g`` ``(N,)`` or ``(N, 1)``; higher = OOD.

    ``σ(g) = P(ID | x)``, so the score is the discriminator's OOD probability. It is computed
    as ``σ(−g)``, which equals ``1 − σ(g)`` without the cancellation for large ``g``.

    Reference:
        Liu et al. (ImOOD), "Rethinking Out-of-Distribution Detection on Imbalanced Data
        Distribution", NeurIPS 2024, arXiv:2407.16430, Sec. 4 (the binary discriminator) and
        the official ``bin_disc`` test metric (long_tailed.md §2.6 (a)). Already oriented
        higher = more OOD: no flip.
    """
    if bin_logit.ndim == 2 and bin_logit.shape[1] == 1:
        bin_logit = bin_logit[:, 0]
    if bin_logit.ndim != 1:
        raise DataError(
            f"bin_logit must be one logit per sample, (N,) or (N, 1); got {tuple(bin_logit.shape)}"
        )
    return torch.sigmoid(-bin_logit.double()).float()


@register_score(
    "bin_disc",
    needs=("extras:bin_logit",),
    paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430",
)
class BinDisc(Score):
    """``1 − σ(g)`` of the model's ``bin_logit`` output (:func:`bin_disc`); higher = more OOD."""

    def score(self, outputs: Outputs) -> Tensor:
        return bin_disc(require_extra(outputs, "bin_logit", "bin_disc"))
