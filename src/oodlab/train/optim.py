"""Optimisers and learning-rate schedules of the papers, stepped once per optimiser step.

* Adam (L2 weight decay, not AdamW) + cosine stepped per epoch: PASCL / ImOOD / PATT on CIFAR
  (``CosineAnnealingLR(T_max=epochs)``, long_tailed.md §1.4, §4.9);
* SGD-Nesterov + multistep (epochs 60 / 80 of 100, γ = 0.1): ImageNet-LT (§1.4);
* SGD-Nesterov + per-iteration cosine down to ``min_lr`` (ASCOOD, synthesis_and_mos.md §1.5);
* step-based multistep with a linear warm-up (MOS's BiT HyperRule, §3.5);
* a per-group learning-rate factor (ASCOOD's ``fc_lr_factor``: :meth:`Recipe.param_groups`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from oodlab.config import TrainConfig


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Multiplier of every group's base learning rate after ``step`` optimiser steps.

    Warm-up is linear from ``1/W`` to 1 over the first ``W = warmup_epochs · steps_per_epoch
    + warmup_steps`` steps; the schedule then applies to the step (or epoch) count since the
    start, as PyTorch's chained schedulers do in the reference code.
    """
    epoch = step // steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch + config.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    floor = config.min_lr / config.lr
    if config.schedule == "cosine":  # stepped per epoch
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "cosine_iter":  # per step
        total = config.epochs * steps_per_epoch
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if config.schedule == "multistep":
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    if config.schedule == "multistep_iter":
        return config.gamma ** sum(step >= m for m in config.milestones)
    return 1.0


def build_optimizer(
    groups: list[dict[str, Any]], config: TrainConfig, *, fused: bool = False
) -> torch.optim.Optimizer:
    """Adam or SGD over parameter groups that carry their own ``lr``.

    ``fused``: the single-kernel CUDA implementation (``fused=True``, same update rule), used
    by the loop on CUDA; ignored where the parameters are not all floating-point CUDA tensors.
    """
    params = [p for g in groups for p in g["params"]]
    fused = fused and bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    extra: dict[str, Any] = {"fused": True} if fused else {}
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, **extra)
    return torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
        **extra,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` with :func:`lr_factor` (its state is saved in checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, config)
    )
