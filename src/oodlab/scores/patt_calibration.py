"""PATT feature calibration: re-weight feature dimensions, then score with the energy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import class_prior
from oodlab.scores.base import Score, register_score, require_head
from oodlab.scores.energy import energy
from oodlab.types import Outputs


def attention_weights(train: Outputs, aux: Outputs, weight: Tensor, prior: Tensor) -> Tensor:
    """The calibration vector ``a = minmax_[0,2](A_id − A_ood)`` ``(D,)``.

    ``A_id = E_balanced[h ⊙ w_y / π_y]`` over a class-balanced draw of the training set,
    computed exactly as the average over classes of the class means of ``h ⊙ w_c / π_c``;
    ``A_ood = mean_j[h_j ⊙ w_ŷ / π_ŷ]`` over the auxiliary outliers with the virtual label
    ``ŷ = argmax f(x_j)`` of the uncalibrated logits.
    """
    weight, prior = weight.double(), prior.double()
    features, labels = train.features.double(), train.labels
    num_classes = weight.shape[0]
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes]
    if (counts == 0).any():
        raise DataError("PATT calibration needs training samples of every class")
    per_sample = features * weight[labels] / prior[labels, None]
    class_sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    class_sums.index_add_(0, labels, per_sample)
    a_id = (class_sums / counts[:, None]).mean(0)
    virtual = aux.logits.argmax(1)
    a_ood = (aux.features.double() * weight[virtual] / prior[virtual, None]).mean(0)
    diff = a_id - a_ood
    span = diff.max() - diff.min()
    if span <= 0:
        return torch.ones_like(diff)
    return 2 * (diff - diff.min()) / span


def calibrated_logits(features: Tensor, weight: Tensor, bias: Tensor, attention: Tensor) -> Tensor:
    """``W (h ⊙ a) + b``: the logits of the re-weighted features ``(N, C)``."""
    return (features.double() * attention.double()) @ weight.double().T + bias.double()


@register_score(
    "patt_energy",
    needs=("features", "head_weight", "aux"),
    requires_fit=True,
    paper="He et al., AAAI 2025, arXiv:2408.06742",
)
class PATTEnergy(Score):
    """Energy of the PATT-calibrated logits; higher = more OOD.

    Reference:
        He, Liu, Zhao, Wang, Ding, Xu & Gong (PATT), "Long-Tailed Out-of-Distribution
        Detection: Prioritizing Attention to Tail", AAAI 2025, arXiv:2408.06742, Sec. 3.3
        (feature calibration) and the energy score; long_tailed.md §3.5.

    Args:
        prior: class frequencies ``π``; ``None`` uses those of the labels given to ``fit``.

    Notes:
        The official CIFAR code fits the calibration on a re-sampled *test* split; oodlab
        fits it on the training outputs (the paper's "extracted from the training set"), and
        replaces the random class-balanced resample by its exact expectation, so the result
        is deterministic. ``fit`` needs the auxiliary outliers: ``fit(train, aux=aux_outputs)``.
    """

    def __init__(self, prior: Sequence[float] | None = None) -> None:
        if prior is not None and any(p <= 0 for p in prior):
            raise ConfigError(f"prior must be positive class frequencies, got {list(prior)}")
        self.prior = prior

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> PATTEnergy:
        if aux is None:
            raise DataError("patt_energy is fitted with auxiliary outliers: fit(train, aux=...)")
        weight, _ = require_head(train, "patt_energy")
        if self.prior is not None:
            prior = torch.as_tensor(list(self.prior), dtype=torch.float64)
            prior = prior / prior.sum()
        else:
            prior = class_prior(train.labels, train.num_classes)
        self.attention_ = attention_weights(train, aux, weight, prior)
        return self

    def calibrated_logits(self, outputs: Outputs) -> Tensor:
        """Calibrated logits; their argmax is PATT's ID prediction."""
        self._check_fitted("attention_")
        weight, bias = require_head(outputs, "patt_energy")
        return calibrated_logits(outputs.features, weight, bias, self.attention_)

    def score(self, outputs: Outputs) -> Tensor:
        return energy(self.calibrated_logits(outputs))
