"""ImOOD post-hoc prior normalisation (the ``ada_*`` scores): remove the class-imbalance bias.

For a baseline ID-ness score ``s(x)`` (higher = more ID), the normalised score is

    s_ada(x) = s(x) + κ · log( (1/C) Σ_c p_c(x) / π̃_c ),    π̃ = softmax(τ_LA · log π)

with ``p = softmax(f(x))``, and oodlab returns ``S(x) = −s_ada(x)`` (higher = more OOD). The
correction is ``log β(x)``, the log of the posterior-weighted prior ratio with ``γ ≡ 1``
(long_tailed.md §2.2, §2.6 (b)).

Reference:
    Liu, Fu, Jin, Chen, Chen, Jiang, Zhou, Chen & Ye (ImOOD), "Rethinking Out-of-Distribution
    Detection on Imbalanced Data Distribution", NeurIPS 2024, arXiv:2407.16430, Sec. 3
    (the balanced detector as the imbalanced one times the class-aware bias β(x)); official
    code alibaba/imood @ 1390244, ``get_ood_scores`` in ``models/base.py`` (``ada_*`` metrics).

Notes:
    The κ defaults are the official code's hand-set values (msp 0.1, energy 1, bin_disc 1,
    maha 0.01, gradnorm 10). The prior π defaults to the class frequencies of the labels
    passed to ``fit``; for a long-tailed training set these are the long-tail counts, which
    is what the official code uses (``evaluate`` passes the run's saved counts as ``prior``).
    The official code needs ``--logit_adjust 1.0`` for the correction to do anything. With a
    uniform prior (or ``τ_LA = 0``) the correction is ``log Σ_c p_c = 0`` and every ``ada_*``
    score equals its baseline (§4.10 #3).

    **Models trained with logit adjustment.** The post-hoc correction is meant for a model
    whose softmax is the imbalanced posterior (plain CE). A model trained with
    ``CE(f + τ_train log π, y)`` (``ce`` with ``options.tau``, ImOOD, PATT's TLA) already has
    ``softmax(f) ∝ P_s(y|x) / π_y^τ_train``; applying ``τ_LA = 1`` again corrects the prior
    twice (measured on ``fmnist_lt``, README). So ``tau_la=None`` (the default) uses the
    residual ``τ_LA = max(0, 1 − trained_tau)``: 1 for a plain-CE model, 0 for an
    LA-trained one (then ``ada_*`` equals its baseline score). ``trained_tau`` is the
    strength the model was trained with; :func:`oodlab.evaluate` reads it from the model
    (``trained_logit_adjustment``, set from the run's config when a run is loaded) and the
    results state the τ used (:meth:`_AdaScore.note`). Pass ``tau_la`` to force a value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import class_prior
from oodlab.scores.base import (
    Score,
    head_features,
    register_score,
    require_extra,
    require_head,
    require_positive,
)
from oodlab.scores.energy import energy
from oodlab.scores.gradnorm import gradnorm_norm
from oodlab.scores.mahalanobis import Mahalanobis
from oodlab.scores.msp import msp
from oodlab.types import Outputs

PAPER = "Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430"
A = TypeVar("A", bound="_AdaScore")


def prior_correction(logits: Tensor, prior: Tensor, tau_la: float = 1.0) -> Tensor:
    """``log((1/C) Σ_c p_c / π̃_c)`` with ``π̃ = softmax(τ_LA log π)``, per sample ``(N,)``.

    Computed in float64 in log space: ``LSE_c(log p_c − log π̃_c) − log C``. ``1e-12`` is
    added inside ``log π`` as in the official code.
    """
    prior = prior.to(device=logits.device, dtype=torch.float64)
    log_adjusted_prior = torch.log_softmax(tau_la * torch.log(prior + 1e-12), dim=0)
    log_p = torch.log_softmax(logits.double(), dim=1)
    return torch.logsumexp(log_p - log_adjusted_prior, dim=1) - math.log(logits.shape[1])


def ada_score(
    id_ness: Tensor, logits: Tensor, prior: Tensor, kappa: float, tau_la: float = 1.0
) -> Tensor:
    """``−(s(x) + κ · log β(x))`` for a baseline ID-ness ``s`` ``(N,)``; higher = more OOD.

    The paper's normalised score ``s_ada`` is higher for ID; it is negated here, once.
    """
    correction = prior_correction(logits, prior, tau_la)
    return -(id_ness.to(correction.device).double() + kappa * correction).float()


def _as_prior(prior: Sequence[float]) -> Tensor:
    try:
        values = torch.as_tensor([float(p) for p in prior], dtype=torch.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"prior must be a sequence of class frequencies, got {prior!r}") from None
    if values.numel() < 2 or not torch.isfinite(values).all() or (values <= 0).any():
        raise ConfigError(
            f"prior must hold at least 2 positive, finite class frequencies, got {list(prior)}"
        )
    return values / values.sum()


class _AdaScore(Score):
    """ImOOD prior-normalised score ``−(s(x) + κ log β(x))`` of a baseline; higher = OOD.

    Shared constructor, prior fitting and scoring of the ``ada_*`` scores.

    Args:
        kappa: weight ``κ`` of the correction; ``None`` uses the official per-score value.
        tau_la: logit-adjustment strength ``τ_LA`` of the prior, ``π̃ ∝ π^τ``; ``None`` (the
            default): the residual ``max(0, 1 − trained_tau)`` (module docstring).
        prior: class frequencies ``π`` (normalised to sum 1); ``None``: those of the labels
            given to ``fit``.
        trained_tau: the logit-adjustment strength the model was trained with (0: plain CE).
    """

    default_kappa = 1.0

    def __init__(
        self,
        kappa: float | None = None,
        tau_la: float | None = None,
        prior: Sequence[float] | None = None,
        trained_tau: float = 0.0,
    ) -> None:
        kappa = self.default_kappa if kappa is None else kappa
        require_positive("kappa", kappa, allow_zero=True)
        if tau_la is not None:
            require_positive("tau_la", tau_la, allow_zero=True)
        require_positive("trained_tau", trained_tau, allow_zero=True)
        if prior is not None:
            _as_prior(prior)
        self.kappa = kappa
        self.tau_la = tau_la
        self.prior = prior
        self.trained_tau = trained_tau

    @property
    def effective_tau(self) -> float:
        """The ``τ_LA`` used: ``tau_la`` if given, else ``max(0, 1 − trained_tau)``."""
        return self.tau_la if self.tau_la is not None else max(0.0, 1.0 - self.trained_tau)

    def note(self) -> str:
        """One line for the results: which ``τ_LA`` the prior correction used, and why."""
        tau = self.effective_tau
        if self.tau_la is not None:
            return f"tau_la = {tau:g} (forced)"
        if self.trained_tau > 0:
            return (
                f"tau_la = {tau:g}: the model was trained with logit adjustment "
                f"tau = {self.trained_tau:g}, so only the residual 1 - tau of the prior is "
                "corrected" + (" (none: ada_* equals its baseline score)" if tau == 0 else "")
            )
        return "tau_la = 1: the model was trained without logit adjustment"

    def fit(self: A, train: Outputs, *, aux: Outputs | None = None) -> A:
        if self.prior is not None:
            self.prior_ = _as_prior(self.prior)
        else:
            self.prior_ = class_prior(train.labels, train.num_classes)
        return self

    def id_ness(self, outputs: Outputs) -> Tensor:
        """The baseline score ``s(x)`` ``(N,)``, higher = more ID."""
        raise NotImplementedError

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("prior_")
        if len(self.prior_) != outputs.num_classes:
            raise DataError(
                f"the prior has {len(self.prior_)} classes but the logits {outputs.num_classes}; "
                "pass the prior of the model's training set"
            )
        return ada_score(
            self.id_ness(outputs), outputs.logits, self.prior_, self.kappa, self.effective_tau
        )


@register_score(
    "ada_msp", needs=("logits", "prior", "logit_adjustment"), requires_fit=True, paper=PAPER
)
class AdaMSP(_AdaScore):
    """``−(s + κ log β)`` with ``s = max_c p_c − 1/C`` (official), κ = 0.1; higher = OOD."""

    default_kappa = 0.1

    def id_ness(self, outputs: Outputs) -> Tensor:
        return -msp(outputs.logits).double() - 1 / outputs.num_classes


@register_score(
    "ada_energy", needs=("logits", "prior", "logit_adjustment"), requires_fit=True, paper=PAPER
)
class AdaEnergy(_AdaScore):
    """``−(s + κ log β)`` with ``s = LSE(f)``, κ = 1; higher = more OOD.

    With κ = τ_LA = 1 this is the energy of the logit-adjusted logits plus a constant:
    ``S = −(LSE(f − log π) − log C)`` (long_tailed.md §2.6, §4.10 #1).
    """

    default_kappa = 1.0

    def id_ness(self, outputs: Outputs) -> Tensor:
        return -energy(outputs.logits).double()


@register_score(
    "ada_bin_disc",
    needs=("logits", "extras:bin_logit", "prior", "logit_adjustment"),
    requires_fit=True,
    paper=PAPER,
)
class AdaBinDisc(_AdaScore):
    """``−(s + κ log β)`` with ``s = g``, the discriminator's ID logit, κ = 1; higher = OOD."""

    default_kappa = 1.0

    def id_ness(self, outputs: Outputs) -> Tensor:
        return require_extra(outputs, "bin_logit", "ada_bin_disc").double().reshape(-1)


@register_score(
    "ada_maha",
    needs=("features", "logits", "labels", "prior", "logit_adjustment"),
    requires_fit=True,
    paper=PAPER,
)
class AdaMaha(_AdaScore):
    """``−(s + κ log β)`` with ``s = −min_c d²_c(h)``, κ = 0.01; higher = more OOD.

    Notes:
        The official code fills its class pools with outlier features and, through a double
        negation, feeds an OOD-ness where an ID-ness is expected (long_tailed.md §2.9). oodlab
        re-derives the sign, ``s = −min_c (h − μ_c)ᵀ Σ⁻¹ (h − μ_c)`` (higher = more ID), with
        the class means and tied covariance of the training features of
        :class:`~oodlab.scores.mahalanobis.Mahalanobis` (no ``1e-4·I`` ridge). κ = 0.01 was
        set for the official (buggy) quantity; treat ``ada_maha`` as unverified.
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
    "ada_gradnorm",
    needs=("features", "logits", "head_weight", "prior", "logit_adjustment"),
    requires_fit=True,
    paper=PAPER,
)
class AdaGradNorm(_AdaScore):
    """``−(s + κ log β)`` with ``s`` the per-sample gradient norm, κ = 10; higher = more OOD.

    Notes:
        The official ImOOD code differentiates ``KL(u ‖ softmax(f))`` (its own GradNorm, not
        the all-ones cross-entropy of the GradNorm code), so ``s`` here is
        :func:`~oodlab.scores.gradnorm.gradnorm_norm` with ``kl_uniform=True``: ``1/C`` times
        the quantity of the plain ``gradnorm`` score. κ = 10 is set for that scale. Like
        ``gradnorm`` it reads the linear head's input (:func:`~oodlab.scores.base.head_features`).
    """

    default_kappa = 10.0

    def id_ness(self, outputs: Outputs) -> Tensor:
        weight, bias = require_head(outputs, "ada_gradnorm")
        return gradnorm_norm(
            head_features(outputs), weight, bias, kl_uniform=True, logits=outputs.logits
        )
