"""ASCOOD's pixel-space virtual outliers: attribution, the top-``p_inv`` mask, and the α schedule.

Every function is pure except for the random draws of ``shuffle`` and ``gaussian``, which use
torch's global generator (saved in checkpoints, so resumed runs stay exact).

Reference:
    Regmi, "Image-based Outlier Synthesis With Training Data" (first titled "Going Beyond
    Conventional OOD Detection"), CVPR 2026, arXiv:2411.10794, Sec. 3 (outlier synthesis from
    invariant pixels); synthesis_and_mos.md §1.4 and pitfalls §1.10.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError

OODType = Literal["gradient", "shuffle", "gaussian"]


def alpha_schedule(epoch: int, epochs: int, alpha_max: float, alpha_min: float) -> float:
    """``α(e) = (α_max − α_min)·(1 − e/E) + α_min`` for the 1-based epoch ``e`` of ``E``.

    α falls linearly from just below ``α_max`` (epoch 1) to exactly ``α_min`` (epoch ``E``),
    as the official trainer sets it once per epoch (synthesis_and_mos.md §1.4). The README's
    "initial α_min, final α_max" contradicts its code; the code is followed.
    """
    if epochs < 1 or not 1 <= epoch <= epochs:
        raise ConfigError(f"epoch must be in 1..{epochs} (1-based), got {epoch}")
    return (alpha_max - alpha_min) * (1 - epoch / epochs) + alpha_min


def true_class_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """``G = ∂ℓ_y(x)/∂x`` per sample, in eval mode; parameters get no gradient.

    The raw true-class logit (not its softmax probability) of each sample is summed over the
    batch and differentiated with respect to the input only; in eval mode BatchNorm uses its
    running statistics, so the samples are independent and the sum gives each sample's own
    gradient. Every module's train/eval flag is restored afterwards (pitfall §1.10.5).
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            x_in = x.detach().float().requires_grad_(True)
            logits = model(x_in)
            picked = logits.gather(1, y.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(picked, x_in)
    finally:
        for module, mode in modes:
            module.training = mode
    return grad.detach()


def top_fraction_mask(values: Tensor, fraction: float) -> Tensor:
    """0/1 mask shaped like ``values`` marking, per sample, its ``⌊n·fraction⌋`` largest entries.

    ``n`` is the number of entries of one sample (``values[i].numel()``); ties are broken by
    ``torch.topk``.
    """
    if not 0 <= fraction <= 1:
        raise ConfigError(f"p_inv must be in [0, 1], got {fraction}")
    flat = values.reshape(values.shape[0], -1)
    k = int(flat.shape[1] * fraction)
    mask = torch.zeros_like(flat)
    if k > 0:
        mask.scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    return mask.reshape_as(values)


def gradient_outliers(x: Tensor, grad: Tensor, alpha: float, p_inv: float) -> Tensor:
    """``x′ = x + α·G ⊙ M``, ``M`` the top ``p_inv`` of scalar elements by ``|G|`` (no clipping).

    The step *ascends* the true-class logit (the paper's "+αG_inv", Table 5); it selects
    individual ``(channel, row, column)`` elements, ``⌊C·H·W·p_inv⌋`` per sample.
    """
    return x + alpha * grad * top_fraction_mask(grad.abs(), p_inv)


def shuffle_outliers(x: Tensor, grad: Tensor, p_inv: float) -> Tensor:
    """Permute, per sample, the ``⌊H·W·p_inv⌋`` most salient pixels among themselves.

    Saliency is ``s(h, w) = Σ_c exp(G_{c,h,w})`` (the *signed* gradient; ranked through its
    logarithm, ``logsumexp`` over channels, which cannot overflow). All channels of a pixel
    move together; every other pixel is unchanged.
    """
    if not 0 <= p_inv <= 1:
        raise ConfigError(f"p_inv must be in [0, 1], got {p_inv}")
    b, c = x.shape[:2]
    saliency = torch.logsumexp(grad.float().reshape(b, c, -1), dim=1)  # (B, H·W)
    k = int(saliency.shape[1] * p_inv)
    flat = x.reshape(b, c, -1)
    if k < 2:
        return x.clone()
    where = saliency.topk(k, dim=1).indices  # (B, k)
    order = torch.rand(b, k, device=x.device).argsort(dim=1)
    source = where.gather(1, order)
    moved = flat.gather(2, source[:, None].expand(b, c, k))
    out = flat.clone().scatter_(2, where[:, None].expand(b, c, k), moved)
    return out.reshape_as(x)


def gaussian_outliers(x: Tensor, alpha: float) -> Tensor:
    """``x′ = α·N(0, I)`` shaped like ``x``: pure noise, not added to ``x`` (pitfall §1.10.4)."""
    return alpha * torch.randn_like(x, dtype=torch.float32)


def synthesize(
    model: nn.Module, x: Tensor, y: Tensor, ood_type: OODType, alpha: float, p_inv: float
) -> Tensor:
    """ASCOOD's virtual outliers for the ID batch ``(x, y)`` (detached, a constant input).

    Args:
        model: maps ``x`` to logits; put in eval mode for the attribution, then restored.
        x: ID images ``(B, C, H, W)`` as the model receives them.
        y: their labels ``(B,)``.
        ood_type: ``gradient`` (default of the paper), ``shuffle`` or ``gaussian``.
        alpha: step size α (unused by ``shuffle``).
        p_inv: fraction of "invariant" elements (``gradient``) or pixels (``shuffle``).

    Notes:
        ``x`` is whatever ``model`` takes; the official code works on normalised inputs, and
        the ``ascood`` recipe passes those (it wraps models that normalise internally), so
        the paper's α values apply unchanged.
    """
    if ood_type == "gaussian":
        return gaussian_outliers(x, alpha).to(x.dtype)
    grad = true_class_gradient(model, x, y)
    if ood_type == "gradient":
        return gradient_outliers(x.detach(), grad, alpha, p_inv).to(x.dtype)
    if ood_type == "shuffle":
        return shuffle_outliers(x.detach(), grad, p_inv)
    raise ConfigError(f"ood_type must be gradient, shuffle or gaussian, got {ood_type!r}")


__all__ = [
    "OODType",
    "alpha_schedule",
    "gaussian_outliers",
    "gradient_outliers",
    "shuffle_outliers",
    "synthesize",
    "top_fraction_mask",
    "true_class_gradient",
]
