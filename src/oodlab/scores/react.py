"""ReAct: energy of the logits recomputed from features clipped at a training percentile."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from oodlab.scores.base import Score, register_score, require_head, require_in_range
from oodlab.scores.energy import energy
from oodlab.types import Outputs


def react(features: Tensor, weight: Tensor, bias: Tensor, threshold: float) -> Tensor:
    """Energy of ``W·min(h, c) + b`` for features ``(N, D)``; higher = more OOD.

    Reference:
        Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified Activations",
        NeurIPS 2021, arXiv:2111.12797, Eq. 2 (rectification) and Eq. 3 (energy score).
    """
    clipped = features.float().clamp(max=threshold)
    return energy(clipped @ weight.float().T + bias.float())


@register_score(
    "react",
    needs=("features", "head_weight"),
    requires_fit=True,
    paper="Sun, Guo & Li, NeurIPS 2021, arXiv:2111.12797",
)
class ReAct(Score):
    """ReAct with the clipping threshold at the ``percentile``-th training activation.

    Args:
        percentile: percentile of all training feature activations used as threshold
            (paper: 90; OpenOOD grid below).
    """

    search_space = {"percentile": (85, 90, 95, 99)}

    def __init__(self, percentile: float = 90.0) -> None:
        require_in_range("percentile", percentile, 0.0, 100.0)
        self.percentile = percentile

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> ReAct:
        # numpy, not torch.quantile: the latter refuses inputs above 16M elements.
        values = train.features.double().numpy().ravel()
        self.threshold_ = float(np.percentile(values, self.percentile))
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("threshold_")
        weight, bias = require_head(outputs, "react")
        return react(outputs.features, weight, bias, self.threshold_)
