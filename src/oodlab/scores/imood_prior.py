"""ImOOD post-hoc prior normalisation (the ``ada_*`` scores): remove the class-imbalance bias.

For a baseline ID-ness score ``s(x)`` (higher = more ID), the normalised score is

    s_ada(x) = s(x) + κ · log( (1/C) Σ_c p_c(x) / π̃_c ),    π̃ = softmax(τ_LA · log π)

and oodlab returns ``S(x) = −s_ada(x)`` (higher = more OOD). The correction is the log of the
posterior-weighted prior ratio ``β(x)`` with ``γ ≡ 1`` (long_tailed.md §2.2, §2.6 (b)).

Reference:
    Liu, Zhang, Li, Han, Wang, Shang, Li & Wang (ImOOD), "Rethinking Out-of-Distribution
    Detection on Imbalanced Data Distribution", NeurIPS 2024, arXiv:2407.16430, Eq. 6–8
    (the balanced detector as the imbalanced one times β(x)); official code alibaba/imood
    @ 1390244, ``ada_*`` test metrics.

Notes:
    The κ defaults are the official code's hand-set values. The prior π defaults to the class
    frequencies of the labels passed to ``fit`` (the long-tailed training counts); ``evaluate``
    passes the run's saved counts. With a uniform prior the correction is ``log Σ p_c = 0`` and
    every ``ada_*`` score equals its baseline (§4.10 #3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import class_prior
from oodlab.scores.base import Score, register_score, require_extra, require_head, require_positive
from oodlab.scores.gradnorm import gradnorm
from oodlab.scores.mahalanobis import Mahalanobis
from oodlab.types import Outputs

PAPER = "Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430"


def prior_correction(logits: Tensor, prior: Tensor, tau_la: float = 1.0) -> Tensor:
    """``log((1/C) Σ_c p_c / π̃_c)`` with ``π̃ = softmax(τ_LA log π)``, per sample ``(N,)``."""
    log_adjusted_prior = torch.log_softmax(tau_la * torch.log(prior.double() + 1e-12), dim=0)
    log_p = torch.log_softmax(logits.double(), dim=1)
    num_classes = logits.shape[1]
    return torch.logsumexp(log_p - log_adjusted_prior, dim=1) - torch.log(
        torch.tensor(float(num_classes), dtype=torch.float64)
    )


def ada_score(
    id_ness: Tensor, logits: Tensor, prior: Tensor, kappa: float, tau_la: float
) -> Tensor:
    """``−(s(x) + κ · log β(x))`` for a baseline ID-ness ``s`` ``(N,)``; higher = more OOD."""
    return -(id_ness.double() + kappa * prior_correction(logits, prior, tau_la)).float()


class _AdaScore(Score):
    """Shared constructor, prior fitting and scoring of the ``ada_*`` scores."""

    default_kappa = 1.0

    def __init__(
        self, kappa: float | None = None, tau_la: float = 1.0, prior: Sequence[float] | None = None
    ) -> None:
        kappa = self.default_kappa if kappa is None else kappa
        require_positive("kappa", kappa, allow_zero=True)
        require_positive("tau_la", tau_la, allow_zero=True)
        if prior is not None:
            values = torch.as_tensor(list(prior), dtype=torch.float64)
            if values.ndim != 1 or (values <= 0).any():
                raise ConfigError(f"prior must be positive class frequencies, got {list(prior)}")
        self.kappa = kappa
        self.tau_la = tau_la
        self.prior = prior

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> _AdaScore:
        if self.prior is not None:
            prior = torch.as_tensor(list(self.prior), dtype=torch.float64)
            self.prior_ = prior / prior.sum()
        else:
            self.prior_ = class_prior(train.labels, train.num_classes)
        return self

    def id_ness(self, outputs: Outputs) -> Tensor:
        raise NotImplementedError

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("prior_")
        if len(self.prior_) != outputs.num_classes:
            raise DataError(
                f"the prior has {len(self.prior_)} classes but the logits {outputs.num_classes}"
            )
        return ada_score(
            self.id_ness(outputs), outputs.logits, self.prior_, self.kappa, self.tau_la
        )


@register_score("ada_msp", needs=("logits",), requires_fit=True, paper=PAPER)
class AdaMSP(_AdaScore):
    """ImOOD-normalised MSP; baseline ``s = max softmax − 1/C``, κ = 0.1."""

    default_kappa = 0.1

    def id_ness(self, outputs: Outputs) -> Tensor:
        probs = torch.softmax(outputs.logits.double(), dim=1)
        return probs.amax(1) - 1 / outputs.num_classes


@register_score("ada_energy", needs=("logits",), requires_fit=True, paper=PAPER)
class AdaEnergy(_AdaScore):
    """ImOOD-normalised energy; baseline ``s = LSE(f)``, κ = 1.

    With κ = τ_LA = 1 this is the energy of the logit-adjusted logits:
    ``−(LSE(f − log π) − log C)`` (long_tailed.md §2.6, §4.10 #1).
    """

    default_kappa = 1.0

    def id_ness(self, outputs: Outputs) -> Tensor:
        return torch.logsumexp(outputs.logits.double(), dim=1)


@register_score(
    "ada_bin_disc", needs=("logits", "extras:bin_logit"), requires_fit=True, paper=PAPER
)
class AdaBinDisc(_AdaScore):
    """ImOOD-normalised binary discriminator; baseline ``s = g`` (the ID logit), κ = 1."""

    default_kappa = 1.0

    def id_ness(self, outputs: Outputs) -> Tensor:
        return require_extra(outputs, "bin_logit", "ada_bin_disc").double().reshape(-1)


@register_score("ada_maha", needs=("features", "logits", "labels"), requires_fit=True, paper=PAPER)
class AdaMaha(_AdaScore):
    """ImOOD-normalised Mahalanobis; baseline ``s = −min_c d²_c``, κ = 0.01.

    Notes:
        The official code's Mahalanobis path has its sign inverted and fills its class pools
        with outlier features (long_tailed.md §2.9); oodlab uses the re-derived sign (higher
        = more ID) and the class statistics of the training features.
    """

    default_kappa = 0.01

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> AdaMaha:
        super().fit(train)
        self.mahalanobis_ = Mahalanobis().fit(train)
        return self

    def id_ness(self, outputs: Outputs) -> Tensor:
        self._check_fitted("mahalanobis_")
        return -self.mahalanobis_.score(outputs).double()


@register_score(
    "ada_gradnorm", needs=("features", "logits", "head_weight"), requires_fit=True, paper=PAPER
)
class AdaGradNorm(_AdaScore):
    """ImOOD-normalised GradNorm; baseline ``s`` = the per-sample gradient norm, κ = 10."""

    default_kappa = 10.0

    def id_ness(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "ada_gradnorm")
        return -gradnorm(outputs.features, weight, bias).double()
