"""PATT feature calibration: re-weight feature dimensions, then score with the energy.

Two weightings of the ID term (``balance``), both in the zoo:

* ``prior`` (``patt_energy``, the default): ``A_id`` is the plain training-set mean of
  ``h ⊙ w_y / π_y``: the tail is weighted once, by ``1/π_y`` — the paper's "attention
  weight extracted from the training set" (Sec. 3.3).
* ``official`` (``patt_energy_official``): the released code (``test.py`` +
  ``Classbalanced_Calibration``): the same ``1/π_y`` per sample *and* a class-balanced draw
  of the calibration set (a ``WeightedRandomSampler`` with weights ``∝ 1/n_c``), so the tail
  is weighted twice (≈ ``1/π²``), accumulated per batch as ``A ← A·b + (S_id^b − S_ood^b)``.

Measured on ``fmnist_lt`` (README, "fmnist_lt: what the numbers say"): the double weighting
builds ``a`` almost only from the rarest classes, and the calibrated classifier then
collapses; weighting once keeps or improves both AUROC and accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import class_counts, class_prior
from oodlab.scores.base import Score, head_features, register_score, require_head
from oodlab.scores.energy import energy
from oodlab.types import Outputs

Balance = Literal["prior", "official"]
PAPER = "He et al. (PATT), AAAI 2025, arXiv:2408.06742"


def minmax_0_2(values: Tensor) -> Tensor:
    """``2·(v − min v) / (max v − min v)``: min-max rescaling to [0, 2]; constant ``v`` → 1."""
    span = values.max() - values.min()
    if span <= 0:
        return torch.ones_like(values)
    return 2 * (values - values.min()) / span


def _weighted(features: Tensor, labels: Tensor, weight: Tensor, prior: Tensor) -> Tensor:
    """``h_i ⊙ w_{y_i} / π_{y_i}`` per sample ``(N, D)``, float64."""
    return features * weight[labels] / prior[labels, None]


def _prepare(
    outputs: Outputs, labels: Tensor, weight: Tensor, prior: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    features = head_features(outputs).double()
    device = features.device
    return features, labels.to(device), weight.to(device).double(), prior.to(device).double()


def attention_weights(
    train: Outputs,
    aux: Outputs,
    weight: Tensor,
    prior: Tensor,
    balance: Balance = "prior",
    batch_size: int = 1000,
    seed: int = 3407,
) -> Tensor:
    """The calibration vector ``a = minmax_[0,2](A_id − A_ood)`` ``(D,)``, float64.

    ``A_ood = mean_j[h_j ⊙ w_{ŷ_j} / π_{ŷ_j}]`` over the auxiliary outliers, with the
    virtual label ``ŷ_j = argmax f(x_j)`` of their uncalibrated logits. ``A_id``:

    * ``balance="prior"``: ``mean_i[h_i ⊙ w_{y_i} / π_{y_i}]`` over the training outputs.
    * ``balance="official"``: :func:`official_accumulation` (class-balanced draw, batches,
      ``A ← A·b + ΔA_b``).

    ``h`` is the linear head's input (:func:`~oodlab.scores.base.head_features`; ASCOOD: the
    z-scored features).

    Args:
        train: labelled ID training outputs (features and ground-truth labels).
        aux: auxiliary-outlier outputs (features and logits).
        weight: ``(C, D)`` classifier weight ``W``; row ``c`` is ``w_c``.
        prior: ``(C,)`` class prior ``π``.
        balance: ``"prior"`` or ``"official"``.
        batch_size, seed: the official draw's batch size (1000) and seed (3407).
    """
    if len(aux) == 0:
        raise DataError("PATT calibration needs auxiliary outliers, got none")
    if balance == "official":
        return minmax_0_2(official_accumulation(train, aux, weight, prior, batch_size, seed))
    features, labels, weight, prior = _prepare(train, train.labels, weight, prior)
    class_counts(labels.cpu(), weight.shape[0])  # every class present, labels in range
    a_id = _weighted(features, labels, weight, prior).mean(0)
    aux_features, virtual, _, _ = _prepare(aux, aux.logits.argmax(1), weight, prior)
    a_ood = _weighted(aux_features, virtual, weight, prior).mean(0)
    return minmax_0_2(a_id - a_ood)


def official_accumulation(
    train: Outputs,
    aux: Outputs,
    weight: Tensor,
    prior: Tensor,
    batch_size: int = 1000,
    seed: int = 3407,
) -> Tensor:
    """The released code's ``A`` ``(D,)`` before the min-max (a positive multiple of it).

    1. Draw ``N = len(train)`` indices with replacement, weights ``∝ 1/n_{y_i}`` (a
       ``WeightedRandomSampler``: ``torch.multinomial`` with a ``seed``-ed generator).
    2. Cut them into batches of ``batch_size`` (``drop_last``; one batch of all ``N`` draws
       when ``N < batch_size``) and zip them with the outliers in order, in batches of
       ``batch_size`` (no ``drop_last``): the step count is the shorter of the two.
    3. Per step ``b = 0, 1, …``: ``A ← A·b + (mean_batch[h ⊙ w_y/π_y] − mean_aux_batch[h ⊙
       w_ŷ/π_ŷ])``.

    ``A·b`` grows like ``b!``; ``A`` is kept as ``e^L · Ã`` with ``max|Ã| = 1`` so that it
    never overflows (the min-max that follows is scale-invariant, so ``a`` is unchanged).
    """
    features, labels, weight, prior = _prepare(train, train.labels, weight, prior)
    counts = class_counts(labels.cpu(), weight.shape[0]).double()
    sample_weight = (1.0 / counts)[labels.cpu()]
    generator = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(sample_weight, len(labels), replacement=True, generator=generator)
    size = min(batch_size, len(draws))
    id_batches = draws[: len(draws) // size * size].split(size)
    aux_features, virtual, _, _ = _prepare(aux, aux.logits.argmax(1), weight, prior)
    aux_batches = torch.arange(len(aux_features)).split(batch_size)
    scaled = torch.zeros(features.shape[1], dtype=torch.float64, device=features.device)
    log_scale = 0.0
    for step, (id_index, aux_index) in enumerate(zip(id_batches, aux_batches, strict=False)):
        id_index, aux_index = id_index.to(features.device), aux_index.to(features.device)
        s_id = _weighted(features[id_index], labels[id_index], weight, prior).mean(0)
        s_ood = _weighted(aux_features[aux_index], virtual[aux_index], weight, prior).mean(0)
        new = scaled * step + (s_id - s_ood) * math.exp(-log_scale)
        peak = float(new.abs().max())
        if peak > 0:
            scaled, log_scale = new / peak, log_scale + math.log(peak)
        else:
            scaled = new
    return scaled


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
    needs=("features", "head_weight", "aux", "prior", "calibrated_classifier"),
    requires_fit=True,
    paper=PAPER,
)
class PATTEnergy(Score):
    """Energy of the PATT-calibrated logits: :func:`patt_energy`; higher = more OOD.

    ``fit(train, aux=aux_outputs)`` computes the attention vector ``a_`` with
    :func:`attention_weights`; ``calibrated_logits(outputs)`` gives the logits whose argmax
    is PATT's ID prediction.

    Args:
        prior: class frequencies ``π`` (normalised to sum 1); ``None`` uses the frequencies
            of the labels given to ``fit`` (the long-tail counts of the training set).
        balance: ``"prior"`` (default: weight the tail once, the paper's text) or
            ``"official"`` (the released code's double weighting); see the module docstring.
        batch_size, seed: batch size (1000) and sampler seed (3407) of ``"official"``.

    Reference:
        He et al. (PATT), AAAI 2025, arXiv:2408.06742 (long_tailed.md §3.5).

    Notes:
        The official CIFAR code draws its class-balanced ID set from a long-tailed resample
        of the *test* split (2,478 images, so 2 batches of 1000); oodlab uses the training
        outputs (the paper's "extracted from the training set", and the ImageNet path),
        without the code's augmentations; ``"official"`` reproduces its sampler, batching
        and ``A·b`` accumulation on them, so with more than two batches the first two
        dominate, as they would in the code. The default is ``"prior"`` because, measured
        on every offline model (README), ``"official"`` collapses the calibrated
        classifier and its AUROC; the paper's numbers come from the released code.
        A constant ``A_id − A_ood`` gives ``a ≡ 1`` (the identity).
    """

    default_balance: Balance = "prior"

    def __init__(
        self,
        prior: Sequence[float] | None = None,
        balance: Balance | None = None,
        batch_size: int = 1000,
        seed: int = 3407,
    ) -> None:
        if prior is not None:
            values = list(prior)
            if len(values) < 2 or any(
                isinstance(p, bool) or not isinstance(p, int | float) or not p > 0 for p in values
            ):
                raise ConfigError(f"prior must be positive class frequencies, got {values}")
        balance = self.default_balance if balance is None else balance
        if balance not in ("prior", "official"):
            raise ConfigError(f"balance must be 'prior' or 'official', got {balance!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.prior = prior
        self.balance: Balance = balance
        self.batch_size = batch_size
        self.seed = seed

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
        self.a_ = attention_weights(
            train, aux, weight, prior, self.balance, self.batch_size, self.seed
        )
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


@register_score(
    "patt_energy_official",
    needs=("features", "head_weight", "aux", "prior", "calibrated_classifier"),
    requires_fit=True,
    paper=PAPER,
)
class PATTEnergyOfficial(PATTEnergy):
    """:class:`PATTEnergy` with ``balance="official"``: the released code's double weighting.

    Reference:
        He et al. (PATT), AAAI 2025, arXiv:2408.06742; official code InaR-design/PATT @ 63bc89d,
        ``test.py`` (``WeightedRandomSampler``) and ``models/resnet.py``
        (``Classbalanced_Calibration``).
    """

    default_balance: Balance = "official"
