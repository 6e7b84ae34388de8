"""Schedules against PyTorch's own schedulers stepped as the papers step them; param groups."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from oodlab.config import TrainConfig
from oodlab.models import MODELS
from oodlab.train.optim import build_optimizer, build_scheduler, lr_factor
from oodlab.train.recipes import Recipe

STEPS_PER_EPOCH = 5


def ours(config: TrainConfig, total_steps: int) -> list[float]:
    """Learning rates our per-step scheduler gives each step."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([{"params": [param], "lr": config.lr}], config)
    scheduler = build_scheduler(optimizer, STEPS_PER_EPOCH, config)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def reference(make, total_steps: int, per_epoch: bool) -> list[float]:
    """Learning rates of a torch scheduler stepped per epoch (PASCL) or per step (ASCOOD)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = make(optimizer)
    rates = []
    for step in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if not per_epoch or (step + 1) % STEPS_PER_EPOCH == 0:
            scheduler.step()
    return rates


def test_cosine_per_epoch_is_cosine_annealing_stepped_per_epoch():
    config = TrainConfig(epochs=4, lr=0.1, optimizer="sgd", schedule="cosine")
    expected = reference(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4), 20, per_epoch=True
    )
    assert ours(config, 20) == pytest.approx(expected, abs=1e-12)


def test_cosine_per_iteration_with_floor():
    config = TrainConfig(epochs=3, lr=0.1, optimizer="sgd", schedule="cosine_iter", min_lr=1e-3)
    expected = reference(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15, eta_min=1e-3),
        15,
        per_epoch=False,
    )
    assert ours(config, 15) == pytest.approx(expected, abs=1e-12)


def test_multistep_in_epochs_and_in_steps():
    config = TrainConfig(epochs=6, lr=0.1, optimizer="sgd", schedule="multistep", milestones=[2, 4])
    expected = reference(
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 4], 0.1), 30, per_epoch=True
    )
    assert ours(config, 30) == pytest.approx(expected, abs=1e-12)
    steps = dataclasses.replace(config, schedule="multistep_iter", milestones=[3, 7])
    expected = reference(
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 7], 0.1), 30, per_epoch=False
    )
    assert ours(steps, 30) == pytest.approx(expected, abs=1e-12)


def test_linear_warmup_then_schedule():
    config = TrainConfig(epochs=4, lr=0.1, schedule="constant", warmup_epochs=1, warmup_steps=3)
    assert [lr_factor(s, STEPS_PER_EPOCH, config) for s in range(10)] == pytest.approx(
        [1 / 8, 2 / 8, 3 / 8, 4 / 8, 5 / 8, 6 / 8, 7 / 8, 1, 1, 1]
    )


def test_head_lr_factor_and_frozen_parameters():
    model = MODELS.create("small_cnn", num_classes=3, in_channels=1, width=0.25)
    model.block1.requires_grad_(False)
    config = TrainConfig(lr=0.2, head_lr_factor=0.05, optimizer="sgd")
    groups = Recipe(None, [1, 1, 1]).param_groups(model, config)
    optimizer = build_optimizer(groups, config)
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert by_name["head"]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in by_name["head"]["params"]} == {id(p) for p in model.linear.parameters()}
    body = {id(p) for p in by_name["body"]["params"]}
    assert not body & {id(p) for p in model.block1.parameters()}  # frozen: not optimised
    assert len(body) + 2 == sum(p.requires_grad for p in model.parameters())
    assert optimizer.defaults["nesterov"] is True
