"""PATT: implicit semantic augmentation (ProCo's closed-form vMF contrast), temperature-scaled
logit adjustment and outlier exposure."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.special
import torch
import torch.distributed as dist
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss
from oodlab.losses.oe import outlier_exposure

# Debye's uniform asymptotic expansion of I_ν(νz) (DLMF 10.41.3, polynomials 10.41.10),
# as coefficients of t^k; used for ν ≥ _DEBYE_MIN_ORDER, where its 4-term error < 1e-10.
_DEBYE = (
    (1.0,),
    (0.0, 3 / 24, 0.0, -5 / 24),
    (0.0, 0.0, 81 / 1152, 0.0, -462 / 1152, 0.0, 385 / 1152),
    tuple(c / 414720 for c in (0, 0, 0, 30375, 0, -369603, 0, 765765, 0, -425425)),
    tuple(
        c / 39813120
        for c in (0, 0, 0, 0, 4465125, 0, -94121676, 0, 349922430, 0, -446185740, 0, 185910725)
    ),
)
_DEBYE_MIN_ORDER = 30.0


def log_bessel_iv(order: float, x: Tensor) -> Tensor:
    """``log I_ν(x)`` of the modified Bessel function of the first kind, float64, ``x > 0``.

    Stable where ``I_ν`` over- or underflows (``ν = p/2 − 1 = 255`` for 512-d features):
    Debye's uniform expansion for ``ν ≥ 30``, ``log ive(ν, x) + x`` (SciPy) below.
    """
    x = x.double().clamp_min(1e-300)
    if order < _DEBYE_MIN_ORDER:
        values = scipy.special.ive(order, x.detach().cpu().numpy())
        with np.errstate(divide="ignore"):
            return torch.from_numpy(np.log(values)).to(x.device) + x
    z = x / order
    s = torch.sqrt(1 + z * z)
    t = 1 / s
    series = torch.zeros_like(x)
    for k, coefficients in enumerate(_DEBYE):
        poly = torch.zeros_like(x)
        for c in reversed(coefficients):
            poly = poly * t + c
        series = series + poly / order**k
    eta = s + torch.log(z / (1 + s))
    return -0.5 * math.log(2 * math.pi * order) + order * eta - 0.5 * torch.log(s) + series.log()


class _LogVMFTerm(torch.autograd.Function):
    """``log I_ν(κ) − ν log κ`` with the gradient ``I_{ν+1}(κ)/I_ν(κ)`` clipped at 1."""

    @staticmethod
    def forward(ctx: Any, kappa: Tensor, order: float) -> Tensor:
        k = kappa.detach().double()
        ctx.save_for_backward(k)
        ctx.order = order
        return (log_bessel_iv(order, k) - order * k.log()).to(kappa.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (k,) = ctx.saved_tensors
        ratio = (log_bessel_iv(ctx.order + 1, k) - log_bessel_iv(ctx.order, k)).exp()
        return grad * ratio.clamp(max=1).to(grad.dtype), None


def log_vmf_term(kappa: Tensor, dim: int) -> Tensor:
    """``log I_{p/2−1}(κ) − (p/2 − 1)·log κ`` (= −log C_p(κ) + const) for ``p = dim``."""
    return _LogVMFTerm.apply(kappa, dim / 2 - 1)


def vmf_concentration(means: Tensor, dim: int) -> Tensor:
    """``κ = p·R / (1 − R²)`` with ``R = ‖m‖``; above 1e5, or negative (R > 1), → 1e5."""
    r = means.double().norm(dim=1)
    kappa = dim * r / (1 - r * r)
    return torch.where((kappa < 0) | ~torch.isfinite(kappa), 1e5, kappa.clamp(max=1e5))


@register_loss("proco", paper="Du et al. (ProCo), TPAMI 2024, arXiv:2403.06726")
class ProCoLoss(nn.Module):
    """PATT's ISAC term: logit-adjusted CE over closed-form vMF contrastive logits.

    Each class is a vMF distribution ``(μ_c, κ_c)`` fitted to the running mean ``m_c`` of
    its (detached) features. The expected ``exp(z·z'/τ)`` over infinitely many ``z' ~
    vMF(μ_c, κ_c)`` is ``C_p(κ_c)/C_p(κ̃_ic)`` with ``κ̃_ic = ‖κ_c μ_c + z_i/τ‖``, so the
    contrastive logit is ``o_ic = log_vmf_term(κ̃_ic) − log_vmf_term(κ_c)``, and the loss
    ``CE(o + log π, y)``. Statistics are updated with the batch *before* the logits and are
    never reset (PATT calls the reset hook nowhere); under torchrun the batch sums are
    all-reduced so every process keeps the same statistics.

    Args:
        num_classes, dim: ``C`` and the feature dimension ``p``.
        prior: class prior ``π`` ``(C,)``.
        temperature: ``τ`` (0.1).
        normalize: L2-normalise the features (ProCo and the paper's hypersphere, the default);
            ``False`` feeds raw features as the official PATT code does, where ``κ`` then
            saturates at 1e5 and ``o`` ≈ ``μ_c·z/τ`` (long_tailed.md §3.8).

    Reference:
        Du, Wang, Song & Huang (ProCo), "Probabilistic Contrastive Learning for Long-Tailed
        Visual Recognition", TPAMI 2024, arXiv:2403.06726, Eq. 9–13; used as ISAC by He et al.
        (PATT), AAAI 2025, arXiv:2408.06742, Sec. 3.2 (long_tailed.md §3.4).

    Notes:
        ``κ̃`` is computed from ``κ_c² + 2κ_c μ_c·z/τ + ‖z‖²/τ²`` (an ``N × C`` matrix), not
        from the dense ``N × C × p`` tensor of the official code. Class means start at
        ``0.9 ×`` a random unit vector drawn from torch's global generator (seed the run).
    """

    means: Tensor
    counts: Tensor
    log_prior: Tensor

    def __init__(
        self,
        num_classes: int,
        dim: int,
        prior: Tensor,
        temperature: float = 0.1,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"the ProCo temperature must be > 0, got {temperature}")
        init = nn.functional.normalize(torch.randn(num_classes, dim), dim=1) * 0.9
        self.register_buffer("means", init)
        self.register_buffer("counts", torch.zeros(num_classes))
        self.register_buffer("log_prior", torch.log(prior.double() + 1e-12).float())
        self.dim, self.temperature, self.normalize = dim, temperature, normalize

    @torch.no_grad()
    def update(self, z: Tensor, labels: Tensor) -> None:
        """Fold the batch into the cumulative class means."""
        sums = torch.zeros_like(self.means).index_add_(0, labels, z.detach().float())
        counts = torch.bincount(labels, minlength=len(self.counts)).to(self.counts)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        total = self.counts + counts
        seen = counts > 0
        self.means[seen] = (self.counts[seen, None] * self.means[seen] + sums[seen]) / total[
            seen, None
        ]
        self.counts.copy_(total)

    def logits(self, z: Tensor) -> Tensor:
        """The contrastive logits ``o`` ``(N, C)`` of features ``z`` (no statistics update)."""
        kappa = vmf_concentration(self.means, self.dim)
        mu = nn.functional.normalize(self.means.double(), dim=1)
        zt = z.double() / self.temperature
        tilde = kappa**2 + 2 * kappa * (zt @ mu.T) + (zt * zt).sum(1, keepdim=True)
        tilde = tilde.clamp_min(1e-12).sqrt()
        return (log_vmf_term(tilde, self.dim) - log_vmf_term(kappa, self.dim)).float()

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        if self.normalize:
            z = nn.functional.normalize(z, dim=1)
        self.update(z, labels)
        return nn.functional.cross_entropy(self.logits(z) + self.log_prior, labels)


def temperature_scaled_la(
    logits: Tensor, labels: Tensor, log_prior: Tensor, scale: float
) -> Tensor:
    """TLA: ``CE(f/T_s + log π, y)`` — the temperature divides before the prior is added.

    Reference: He et al. (PATT), AAAI 2025, arXiv:2408.06742, Sec. 3.3 (long_tailed.md §3.4).
    """
    return nn.functional.cross_entropy(logits / scale + log_prior.to(logits), labels)


@register_loss("patt", paper="He et al. (PATT), AAAI 2025, arXiv:2408.06742")
class PATTLoss(nn.Module):
    """``L = ½[ISAC(z², y) + ISAC(z³, y)] + λ2·TLA(f(x¹)) + λ1·OE(f(x_aux))``.

    Args:
        num_classes, dim, prior: as :class:`ProCoLoss`.
        oe_weight: ``λ1`` (0.1 CIFAR, 0.02 ImageNet); tla_weight: ``λ2`` (0.5).
        temperature: ProCo ``τ`` (0.1); tla_scale: ``T_s`` (0.9 CIFAR, 0.7 ImageNet).
        normalize: see :class:`ProCoLoss`.

    Reference:
        He, Ye, Zhang, Wang & Chen (PATT), "Long-Tailed Out-of-Distribution Detection:
        Prioritizing Attention to Tail", AAAI 2025, arXiv:2408.06742, Eq. 9 (the total loss).
        λ1 / λ2 follow the code's defaults; the README's CIFAR command swaps them
        (long_tailed.md §3.4).
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        prior: Tensor,
        oe_weight: float = 0.1,
        tla_weight: float = 0.5,
        temperature: float = 0.1,
        tla_scale: float = 0.9,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if tla_scale <= 0:
            raise ConfigError(f"the TLA temperature T_s must be > 0, got {tla_scale}")
        self.proco = ProCoLoss(num_classes, dim, prior, temperature, normalize)
        self.oe_weight, self.tla_weight, self.tla_scale = oe_weight, tla_weight, tla_scale

    def terms(
        self, logits1: Tensor, z2: Tensor, z3: Tensor, labels: Tensor, aux_logits: Tensor
    ) -> dict[str, Tensor]:
        """Unweighted ``isac``, ``tla`` and ``oe`` (updates the class statistics twice)."""
        isac = 0.5 * (self.proco(z2, labels) + self.proco(z3, labels))
        tla = temperature_scaled_la(logits1, labels, self.proco.log_prior, self.tla_scale)
        return {"isac": isac, "tla": tla, "oe": outlier_exposure(aux_logits)}

    def forward(
        self, logits1: Tensor, z2: Tensor, z3: Tensor, labels: Tensor, aux_logits: Tensor
    ) -> Tensor:
        t = self.terms(logits1, z2, z3, labels, aux_logits)
        return t["isac"] + self.tla_weight * t["tla"] + self.oe_weight * t["oe"]
