"""ASH: activation shaping of the penultimate features, then the energy score."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from oodlab.errors import ConfigError
from oodlab.scores.base import Score, register_score, require_head, require_in_range
from oodlab.scores.energy import energy
from oodlab.types import Outputs

Variant = Literal["p", "b", "s"]


def shape_activations(features: Tensor, percentile: float, variant: Variant) -> Tensor:
    """Keep each sample's top ``(100 − percentile)%`` activations and reshape them.

    ``p``: prune the rest to zero; ``b``: set every kept entry to ``s1 / k`` (the sample's
    total activation spread evenly over the ``k`` kept entries); ``s``: scale the kept entries
    by ``exp(s1 / s2)``, where ``s1`` is the total before and ``s2`` after pruning.
    """
    features = features.double()
    num_keep = max(1, round(features.shape[1] * (1 - percentile / 100)))
    values, index = features.topk(num_keep, dim=1)
    total = features.sum(1, keepdim=True)
    if variant == "p":
        kept = values
    elif variant == "b":
        kept = (total / num_keep).expand_as(values)
    else:
        kept = values * torch.exp(total / values.sum(1, keepdim=True).clamp_min(1e-12))
    return torch.zeros_like(features).scatter(1, index, kept)


@register_score(
    "ash",
    needs=("features", "head_weight"),
    paper="Djurisic, Bozanic, Ashok & Liu, ICLR 2023, arXiv:2209.09858",
)
class ASH(Score):
    """Energy of the logits recomputed from shaped activations; higher = more OOD.

    Reference:
        Djurisic, Bozanic, Ashok & Liu, "Extremely Simple Activation Shaping for
        Out-of-Distribution Detection", ICLR 2023, arXiv:2209.09858, Alg. 1 (ASH-P, -B, -S)
        followed by the energy score (Eq. 1 of Liu et al. 2020).

    Args:
        percentile: pruning percentile ``p`` (paper: 90 on CIFAR ResNet; OpenOOD grid below).
        variant: ``"p"``, ``"b"`` or ``"s"``.

    Notes:
        The paper shapes the last convolutional feature map before global pooling. On cached
        outputs oodlab shapes the pooled penultimate features instead (what OpenOOD's ASH
        amounts to for its pooled-feature wrappers); values differ from the map variant.
    """

    search_space = {"percentile": (65, 70, 75, 80, 85, 90, 95)}

    def __init__(self, percentile: float = 90.0, variant: Variant = "s") -> None:
        require_in_range("percentile", percentile, 0.0, 99.9)
        if variant not in ("p", "b", "s"):
            raise ConfigError(f"variant must be 'p', 'b' or 's', got {variant!r}")
        self.percentile = percentile
        self.variant = variant

    def score(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "ash")
        shaped = shape_activations(outputs.features, self.percentile, self.variant)
        return energy(shaped @ weight.double().T + bias.double())
