"""PATT feature calibration: re-weight feature dimensions, then score with the energy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import class_counts, class_prior
from oodlab.scores.base import Score, head_features, register_score, require_head
from oodlab.scores.energy import energy
from oodlab.types import Outputs


def minmax_0_2(values: Tensor) -> Tensor:
    """``2·(v − min v) / (max v − min v)``: min-max rescaling to [0, 2]; constant ``v`` → 1."""
    span = values.max() - values.min()
    if span <= 0:
        return torch.ones_like(values)
    return 2 * (values - values.min()) / span


def attention_weights(train: Outputs, aux: Outputs, weight: Tensor, prior: Tensor) -> Tensor:
    """The calibration vector ``a = minmax_[0,2](A_id − A_ood)`` ``(D,)``, float64.

    ``A_id = E_balanced[h ⊙ w_y / π_y]``, the expectation over a class-balanced draw of the
    training outputs (uniform class, then a uniform sample of that class), computed exactly
    as the average over classes of the class means of ``h_i ⊙ w_{y_i} / π_{y_i}``;
    ``A_ood = mean_j[h_j ⊙ w_{ŷ_j} / π_{ŷ_j}]`` over the auxiliary outliers, with the virtual
    label ``ŷ_j = argmax f(x_j)`` of their uncalibrated logits. ``h`` is the linear head's
    input (:func:`~oodlab.scores.base.head_features`; ASCOOD: the z-scored features).

    Args:
        train: labelled ID training outputs (features and ground-truth labels).
        aux: auxiliary-outlier outputs (features and logits).
        weight: ``(C, D)`` classifier weight ``W``; row ``c`` is ``w_c``.
        prior: ``(C,)`` class prior ``π``.
    """
    if len(aux) == 0:
        raise DataError("PATT calibration needs auxiliary outliers, got none")
    features = head_features(train).double()
    device = features.device
    weight, prior = weight.to(device).double(), prior.to(device).double()
    labels = train.labels.to(device)
    num_classes = weight.shape[0]
    counts = class_counts(labels, num_classes).to(device)
    per_sample = features * weight[labels] / prior[labels, None]
    class_sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64, device=device)
    class_sums.index_add_(0, labels, per_sample)
    a_id = (class_sums / counts[:, None]).mean(0)
    virtual = aux.logits.to(device).argmax(1)
    aux_features = head_features(aux).to(device).double()
    a_ood = (aux_features * weight[virtual] / prior[virtual, None]).mean(0)
    return minmax_0_2(a_id - a_ood)


def calibrated_logits(features: Tensor, weight: Tensor, bias: Tensor, attention: Tensor) -> Tensor:
    """``W (h ⊙ a) + b``: the logits of the re-weighted features ``(N, C)``, float64."""
    device = features.device
    scaled = features.double() * attention.to(device).double()
    return scaled @ weight.to(device).double().T + bias.to(device).double()


def patt_energy(features: Tensor, weight: Tensor, bias: Tensor, attention: Tensor) -> Tensor:
    """``−LSE(W (h ⊙ a) + b)``, the energy of the calibrated logits ``(N,)``; higher = OOD.

    Reference:
        He et al. (PATT), "Long-Tailed Out-of-Distribution Detection: Prioritizing Attention
        to Tail", AAAI 2025, arXiv:2408.06742, Sec. 3 (feature calibration at inference),
        scored by the energy (long_tailed.md §3.5). The energy is already higher = more OOD.
    """
    return energy(calibrated_logits(features, weight, bias, attention))


@register_score(
    "patt_energy",
    needs=("features", "head_weight", "aux"),
    requires_fit=True,
    paper="He et al. (PATT), AAAI 2025, arXiv:2408.06742",
)
class PATTEnergy(Score):
    """Energy of the PATT-calibrated logits: :func:`patt_energy`; higher = more OOD.

    ``fit(train, aux=aux_outputs)`` computes the attention vector ``a_`` with
    :func:`attention_weights`; ``calibrated_logits(outputs)`` gives the logits whose argmax
    is PATT's ID prediction.

    Args:
        prior: class frequencies ``π`` (normalised to sum 1); ``None`` uses the frequencies
            of the labels given to ``fit`` (the long-tail counts of the training set).

    Reference:
        He et al. (PATT), AAAI 2025, arXiv:2408.06742 (long_tailed.md §3.5).

    Notes:
        The official CIFAR code draws its class-balanced ID set from a long-tailed resample
        of the *test* split; oodlab uses the training outputs (the paper's "extracted from
        the training set", and what the ImageNet path does). Instead of a random
        class-balanced resample it computes that resample's expectation exactly (the mean
        over classes of per-class means), so the result is deterministic and has no seed.
        The official per-batch accumulation ``A ← A·b + ΔA_b`` is replaced by the mean
        formula, as the spec prescribes. A constant ``A_id − A_ood`` gives ``a ≡ 1``.
    """

    def __init__(self, prior: Sequence[float] | None = None) -> None:
        if prior is not None:
            values = list(prior)
            if len(values) < 2 or any(
                isinstance(p, bool) or not isinstance(p, int | float) or not p > 0 for p in values
            ):
                raise ConfigError(f"prior must be positive class frequencies, got {values}")
        self.prior = prior

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> PATTEnergy:
        if aux is None:
            raise DataError(
                "patt_energy is fitted with auxiliary outliers: call fit(train, aux=aux_outputs)"
            )
        weight, _ = require_head(train, "patt_energy")
        if self.prior is not None:
            prior = torch.as_tensor(list(self.prior), dtype=torch.float64)
            if len(prior) != train.num_classes:
                raise DataError(
                    f"the prior has {len(prior)} classes, the model {train.num_classes}"
                )
            prior = prior / prior.sum()
        else:
            prior = class_prior(train.labels, train.num_classes)
        self.a_ = attention_weights(train, aux, weight, prior)
        return self

    def calibrated_logits(self, outputs: Outputs) -> Tensor:
        """Calibrated logits ``W (h ⊙ a) + b`` ``(N, C)``; their argmax is PATT's prediction."""
        self._check_fitted("a_")
        weight, bias = require_head(outputs, "patt_energy")
        return calibrated_logits(head_features(outputs), weight, bias, self.a_)

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("a_")
        weight, bias = require_head(outputs, "patt_energy")
        return patt_energy(head_features(outputs), weight, bias, self.a_)
