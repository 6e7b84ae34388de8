"""SCALE: energy of the logits of features scaled by ``exp(s1 / s2)`` (no pruning)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from oodlab.errors import ConfigError
from oodlab.scores.ash import num_kept
from oodlab.scores.base import (
    Score,
    head_features,
    register_score,
    require_head,
    require_in_range,
)
from oodlab.scores.energy import energy
from oodlab.types import Outputs

Space = Literal["head_input", "features"]


def scale_factor(features: Tensor, percentile: float) -> Tensor:
    """``r = s1 / s2`` per sample ``(N,)``: the sum of all activations over the sum of the top
    ``(100 − p)%`` (the same count as ASH, :func:`~oodlab.scores.ash.num_kept`)."""
    features = features.double()
    k = num_kept(features.shape[1], percentile)
    top = features.topk(k, dim=1).values.sum(1)
    return features.sum(1) / top.clamp_min(1e-12)


def scale(features: Tensor, weight: Tensor, bias: Tensor, percentile: float) -> Tensor:
    """Energy ``−LSE(W·(h·exp(r)) + b)`` with ``r`` of :func:`scale_factor`; higher = more OOD.

    Reference:
        Xu, Lian, Liu, Chen & Xiao, "Scaling for Training Time and Post-hoc
        Out-of-distribution Detection Enhancement" (SCALE / ISH), ICLR 2024,
        arXiv:2310.00227, Sec. 3 (Eq. 3: ``r = s1 / s2``, the features multiplied by
        ``exp(r)`` and not pruned), scored by the energy. The paper thresholds the negative
        energy (higher = more ID); :func:`~oodlab.scores.energy.energy` is already oriented.
    """
    factor = torch.exp(scale_factor(features, percentile)).unsqueeze(1)
    return energy((features.double() * factor) @ weight.double().T + bias.double())


@register_score(
    "scale",
    needs=("features", "head_weight"),
    paper="Xu et al. (SCALE), ICLR 2024, arXiv:2310.00227",
)
class SCALE(Score):
    """Energy of the scaled features' logits: :func:`scale`; higher = more OOD.

    Args:
        percentile: ``p`` in [0, 99.9] (OpenOOD v1.5 default 85; grid below).
        space: ``"head_input"`` (default) scales the classifier's input, so that unscaled
            it gives the model's own logits (:func:`~oodlab.scores.base.head_features`);
            ``"features"`` scales the raw penultimate ``h`` and applies ``W, b`` to it, as
            OpenOOD's ``forward_threshold`` does on ASCOOD's net (bypassing its z-score,
            synthesis_and_mos.md §1.10 pitfall 9) — the option that reproduces the ASCOOD
            repo's SCALE numbers. The two agree on models without a ``pre_head``.

    Notes:
        As ASH, the paper scales the last feature map before pooling; oodlab scales the pooled
        ``D`` activations, as OpenOOD v1.5 does (it views the pooled feature as
        ``(N, D, 1, 1)``). ``s2`` is clamped at 1e-12 so that all-zero samples stay finite.
    """

    search_space = {"percentile": (65, 70, 75, 80, 85, 90, 95)}

    def __init__(self, percentile: float = 85.0, space: Space = "head_input") -> None:
        require_in_range("percentile", percentile, 0.0, 99.9)
        if space not in ("head_input", "features"):
            raise ConfigError(f"space must be 'head_input' or 'features', got {space!r}")
        self.percentile = percentile
        self.space = space

    def score(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "scale")
        x = head_features(outputs) if self.space == "head_input" else outputs.features
        return scale(x, weight, bias, self.percentile)
