"""ReAct: energy of the logits recomputed from features clipped at a training percentile."""

from __future__ import annotations

from torch import Tensor

from oodlab.errors import DataError
from oodlab.scores._stream import streaming_percentile
from oodlab.scores.base import (
    Score,
    head_features,
    register_score,
    require_head,
    require_in_range,
)
from oodlab.scores.energy import energy
from oodlab.types import Outputs


def react(features: Tensor, weight: Tensor, bias: Tensor, threshold: float) -> Tensor:
    """Energy ``−LSE(W·min(h, c) + b)`` for features ``(N, D)``; higher = more OOD.

    Args:
        features: ``(N, D)`` the linear head's input ``h``
            (:func:`~oodlab.scores.base.head_features`).
        weight: ``(C, D)`` weight of the linear head.
        bias: ``(C,)`` bias of the linear head.
        threshold: the clipping value ``c``.

    Reference:
        Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified Activations",
        NeurIPS 2021, arXiv:2111.12797, Eq. 2 (``h̄ = min(h, c)``) and Eq. 3 (the logits of
        the rectified features), scored by the energy of Liu et al. 2020. The paper thresholds
        the negative energy (higher = more ID); :func:`~oodlab.scores.energy.energy` is
        already oriented as oodlab needs, so no further flip happens here.
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
    """Energy after clipping at the ``percentile``-th training activation; higher = more OOD.

    Args:
        percentile: percentile of all training feature activations (every entry of the
            ``(N, D)`` training features pooled together) used as threshold ``c``
            (paper: 90; OpenOOD grid below).

    Notes:
        The paper estimates ``c`` on ID training data; OpenOOD uses its ID validation split.
        oodlab uses the outputs passed to ``fit`` (the training set in ``evaluate``). The
        percentile uses numpy's default linear interpolation and is exact, not estimated from a
        subsample (:func:`~oodlab.scores._stream.streaming_percentile`, in chunks). Threshold
        and clipping act on the classifier's input (ASCOOD: the z-scored features, not the
        raw ``h`` OpenOOD clips; :func:`~oodlab.scores.base.head_features`).
    """

    search_space = {"percentile": (85, 90, 95, 99)}

    def __init__(self, percentile: float = 90.0) -> None:
        require_in_range("percentile", percentile, 0.0, 100.0)
        self.percentile = percentile

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> ReAct:
        # Exactly numpy's percentile of every entry, from a seeded bracket and one streaming
        # pass (no float64 copy of the bank; torch.quantile refuses inputs above 16M entries).
        features = head_features(train)
        if features.numel() == 0:
            raise DataError("react needs training features to set its threshold, got none")
        self.threshold_ = streaming_percentile(features, self.percentile)
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("threshold_")
        weight, bias = require_head(outputs, "react")
        return react(head_features(outputs), weight, bias, self.threshold_)
