"""ImOOD training-time regularisation: learn the balanced detector under a class-aware bias."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss

Detector = Literal["bin_disc", "energy", "msp", "oe"]


def adjusted_prior(prior: Tensor, tau: float) -> Tensor:
    """``π̃ = softmax(τ · log π) = π^τ / Σ π^τ`` (``π`` itself for τ = 1)."""
    return torch.softmax(tau * torch.log(prior.double() + 1e-12), dim=0)


def detector_score(logits: Tensor, detector: Detector) -> Tensor:
    """The scalar ID-ness ``s(x)`` that ``ada_energy`` / ``ada_msp`` turn into a logit.

    ``energy``: ``LSE(f)``; ``msp`` / ``oe``: ``max softmax(f) − 1/C`` (long_tailed.md §2.5).
    """
    if detector == "energy":
        return torch.logsumexp(logits, dim=1)
    if detector in ("msp", "oe"):
        return logits.softmax(dim=1).max(dim=1).values - 1.0 / logits.shape[1]
    raise ConfigError(f"detector {detector!r} has no scalar score; bin_disc uses its own logit")


def class_bias(gamma_logits: Tensor, posterior: Tensor, prior_tilde: Tensor) -> Tensor:
    """``β(x) = mean_c[γ_c(x) · p(c|x) / π̃_c]`` with ``γ = max(exp(γ logits), 1e-4)`` ``(N,)``."""
    gamma = gamma_logits.exp().clamp_min(1e-4)
    return (gamma * posterior / prior_tilde.to(gamma)).mean(dim=1)


def bias_adjusted_bce(det_logit: Tensor, beta: Tensor, is_id: Tensor) -> Tensor:
    """``BCE(σ(g − log δ), 1[ID])`` with the one-sided, clipped ``δ = β + (β − 1)·e^g``.

    ``σ(g − log(β + (β − 1)e^g)) = σ(g)/β``, so the raw ``g`` learns the *balanced* logit
    while ``σ(g)/β`` fits the imbalanced labels. ``δ`` is detached and clipped to [0.1, 10],
    then ``δ ≥ 1`` on ID and ``δ ≤ 1`` on outliers (a margin, not an equality).
    ``e^g`` is taken of ``min(g, 30)``: beyond that the clip decides ``δ`` anyway.
    """
    g, b = det_logit.detach(), beta.detach()
    delta = (b + (b - 1) * g.clamp(max=30).exp()).clamp(0.1, 10)
    delta = torch.where(is_id, delta.clamp_min(1), delta.clamp_max(1))
    return nn.functional.binary_cross_entropy_with_logits(det_logit - delta.log(), is_id.to(g))


def validity_hinge(beta: Tensor, det_logit: Tensor) -> Tensor:
    """``mean ReLU(log β + log σ(g).detach())``: caps ``β·σ(g) ≤ 1``; trains the γ head only.

    Implemented as the official code writes it (long_tailed.md §2.9): the cap is on
    ``β·σ(g)``, not on ``σ(g)/β``.
    """
    return (beta.log() + nn.functional.logsigmoid(det_logit).detach()).relu().mean()


@register_loss("imood", paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430")
class ImOODRegulariser(nn.Module):
    """``L_OOD = hinge + bias-adjusted BCE`` over ID views and outliers (ImOOD ``ada_*``).

    ``forward`` takes, for every row of the concatenated batch (ID views, then outliers),
    the classifier logits, the detector logit ``g`` and the γ logits, the labels (ignored
    on outlier rows) and ``is_aux``; it returns ``{"hinge", "bce"}``. The posterior is the
    label-smoothed one-hot ``(1 − ε)·1_y + ε/C`` on ID rows and the detached softmax on
    outliers.

    Args:
        prior: class prior ``π`` of the training counts ``(C,)``.
        tau: logit-adjustment strength of ``π̃`` (1.0 in the recommended runs).
        smoothing: ``ε`` of the ID posterior (0.2).

    Reference:
        Liu, Li, Zhu, Yu, Chen & Wu (ImOOD), "Rethinking Out-of-Distribution Detection on
        Imbalanced Data Distribution", NeurIPS 2024, arXiv:2407.16430, Sec. 3.3
        (the class-aware bias β(x) and its learnable estimate γ, Eq. 8–10); the official
        ``train.py`` (long_tailed.md §2.5).
    """

    prior_tilde: Tensor

    def __init__(self, prior: Tensor, tau: float = 1.0, smoothing: float = 0.2) -> None:
        super().__init__()
        if not 0 <= smoothing < 1:
            raise ConfigError(f"ImOOD label smoothing must be in [0, 1), got {smoothing}")
        self.register_buffer("prior_tilde", adjusted_prior(prior, tau).float())
        self.smoothing = smoothing

    def posterior(self, logits: Tensor, targets: Tensor, is_aux: Tensor) -> Tensor:
        """``p(y|x)``: smoothed one-hot on ID rows, detached softmax on outlier rows."""
        num_classes = logits.shape[1]
        onehot = nn.functional.one_hot(targets.clamp_min(0), num_classes).to(logits.dtype)
        smoothed = (1 - self.smoothing) * onehot + self.smoothing / num_classes
        return torch.where(is_aux[:, None], logits.detach().softmax(dim=1), smoothed)

    def forward(
        self,
        logits: Tensor,
        det_logit: Tensor,
        gamma_logits: Tensor,
        targets: Tensor,
        is_aux: Tensor,
    ) -> dict[str, Tensor]:
        beta = class_bias(gamma_logits, self.posterior(logits, targets, is_aux), self.prior_tilde)
        return {
            "hinge": validity_hinge(beta, det_logit),
            "bce": bias_adjusted_bce(det_logit, beta, ~is_aux),
        }
