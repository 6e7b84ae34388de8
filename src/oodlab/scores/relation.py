"""Relation (Neural Relation Graph): summed similarity edges to the training set."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import l2_normalize
from oodlab.scores.base import Score, register_score, require_positive
from oodlab.types import Outputs


def relation(
    bank_features: Tensor,
    bank_probs: Tensor,
    features: Tensor,
    logits: Tensor,
    power: float = 1.0,
    threshold: float = 0.03,
    chunk: int = 256,
) -> Tensor:
    """``−Σ_j sign(r_j)·|r_j|^power`` over edges ``r_j = max(ẑᵀẑ_j, 0)·(pᵀp_j)`` with
    ``|r_j| > threshold`` (others zeroed); higher = more OOD.

    ``ẑ`` are L2-normalised features, ``p`` softmax probabilities; ``bank_*`` hold the
    training set's (normalised features, probabilities).

    Reference:
        Kim, Yun & Song, "Neural Relation Graph: A Unified Framework for Identifying Label
        Noise and Outlier Data", NeurIPS 2023, arXiv:2301.12321, Sec. 3 (the relation kernel
        of feature similarity times label-probability agreement) and Sec. 4.2 (the outlier
        score: the sum of a sample's edges to the training graph). The paper's sum is higher
        for ID; oodlab returns its negative.
    """
    if len(bank_features) == 0:
        raise DataError("relation needs a non-empty training bank")
    z = l2_normalize(features.double())
    p = torch.softmax(logits.double(), dim=1)
    bank_z = bank_features.to(z.device).double()
    bank_p = bank_probs.to(z.device).double()
    out = []
    for zb, pb in zip(z.split(chunk), p.split(chunk), strict=True):
        rel = (zb @ bank_z.T).clamp_min(0) * (pb @ bank_p.T)
        rel = rel * (rel.abs() > threshold)
        out.append((rel.sign() * rel.abs() ** power).sum(1))
    return -(torch.cat(out) if out else z.new_zeros(0))


@register_score(
    "relation",
    needs=("features", "logits"),
    requires_fit=True,
    paper="Kim, Yun & Song, NeurIPS 2023, arXiv:2301.12321",
)
class Relation(Score):
    """Negative relation-graph degree: :func:`relation`; higher = more OOD.

    Args:
        power: the kernel's exponent (OpenOOD v1.5 default 1; grid below).
        threshold: edges of magnitude at most this are dropped (0.03, the official value).

    Notes:
        The bank is the whole training set, as in OpenOOD; scoring costs ``N × M`` kernel
        entries, computed ``chunk`` queries at a time.
    """

    search_space = {"power": (1, 2, 4, 6, 8)}

    def __init__(self, power: float = 1.0, threshold: float = 0.03) -> None:
        require_positive("power", power)
        require_positive("threshold", threshold, allow_zero=True)
        if threshold >= 1:
            raise ConfigError(f"threshold must be below 1 (edges lie in [0, 1]), got {threshold}")
        self.power = power
        self.threshold = threshold

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> Relation:
        if len(train.features) == 0:
            raise DataError("relation needs training outputs for its bank, got none")
        self.bank_features_ = l2_normalize(train.features.double())
        self.bank_probs_ = torch.softmax(train.logits.double(), dim=1)
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("bank_features_", "bank_probs_")
        return relation(
            self.bank_features_, self.bank_probs_, outputs.features, outputs.logits,
            self.power, self.threshold,
        )  # fmt: skip
