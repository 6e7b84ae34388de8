"""The one training loop of oodlab: every method plugs in through a recipe.

Per step it draws an ID batch (and, for recipes that use them, a batch of auxiliary
outliers), asks the recipe for the loss — computed from one concatenated forward pass —
and takes an optimiser step; the learning-rate schedule advances per step. After each
epoch it measures ID test accuracy (every ``eval_every`` epochs) and writes an atomic,
verified checkpoint. ``resume=True`` restarts from the last good checkpoint and replays
the interrupted epoch exactly: batch order and augmentation are functions of
``(seed, epoch)``, so on the CPU a resumed run ends bit-identical to an uninterrupted one.
Under ``torchrun`` the model is wrapped in DistributedDataParallel and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oodlab.config import RunConfig, TrainConfig
from oodlab.data import TensorImageDataset, build_benchmark
from oodlab.distributed import DistInfo, barrier, init_from_env, shutdown
from oodlab.errors import ConfigError, DataError
from oodlab.io import atomic_torch_save, atomic_write_json, atomic_write_text
from oodlab.train import checkpoint
from oodlab.train.batches import DeviceBatches
from oodlab.train.recipes import Batch, Recipe, TrainView, build_recipe
from oodlab.train.run import build_model, read_log, write_run_files
from oodlab.types import linear_head


@dataclass
class TrainResult:
    """What a finished run reports (also written to ``train_summary.json``)."""

    run_dir: Path
    epochs: int
    final_accuracy: float
    seconds: float
    images_per_second: float


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate after ``step`` optimiser steps."""
    epoch = step // steps_per_epoch
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if config.schedule == "cosine":  # stepped per epoch, as PASCL / ImOOD / PATT
        return 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "cosine_iter":  # per step (ASCOOD)
        return 0.5 * (1 + math.cos(math.pi * step / (config.epochs * steps_per_epoch)))
    if config.schedule == "multistep":
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    return 1.0


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD; the linear head gets ``lr · head_lr_factor`` (ASCOOD's fc factor)."""
    head = linear_head(model)
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    body = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": body, "lr": config.lr}]
    if head is not None:
        groups.append({"params": list(head.parameters()), "lr": config.lr * config.head_lr_factor})
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global state other code may draw from)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    _, keys, position, *_ = np.random.get_state(legacy=True)  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(position),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))  # noqa: NPY002


@torch.no_grad()
def id_accuracy(
    model: nn.Module, dataset: TensorImageDataset, device: torch.device, batch_size: int = 512
) -> float:
    """Top-1 accuracy of ``model`` on an in-memory ID test set."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(dataset), batch_size):
        x = dataset.images[start : start + batch_size].to(device).float().div_(255)
        y = dataset.targets[start : start + batch_size].to(device)
        correct += int((model(x).argmax(1) == y).sum())
    model.train(was_training)
    return correct / len(dataset)


def _in_memory(dataset: Any, role: str) -> TensorImageDataset:
    if not isinstance(dataset, TensorImageDataset):
        raise DataError(
            f"the {role} set is not held in memory; the training loop currently needs in-memory "
            "datasets (TensorImageDataset: CIFAR, TinyImages, Fashion-MNIST, synthetic)"
        )
    return dataset


def train(config: RunConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train ``config`` into ``run_dir``; with ``resume`` continue from its last checkpoint."""
    run_dir = Path(run_dir)
    if not resume and (run_dir / checkpoint.LATEST).with_suffix(".pt").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it, or another --run-dir"
        )
    info, device = init_from_env(config.train.device)
    try:
        return _train(config, run_dir, resume, info, device)
    finally:
        shutdown(info)


def _train(
    config: RunConfig, run_dir: Path, resume: bool, info: DistInfo, device: torch.device
) -> TrainResult:
    cfg = config.train
    data = config.data
    benchmark = build_benchmark(data.benchmark, data.data_root, seed=data.seed, **data.options)
    recipe: Recipe = build_recipe(config.method.name, config.method.options, benchmark.class_counts)
    seed_everything(cfg.seed)
    model = build_model(config, benchmark.num_classes, benchmark.image_shape[0]).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_set = _in_memory(benchmark.train, "training")
    test_set = _in_memory(benchmark.test, "ID test")
    id_batches = DeviceBatches(
        train_set.images,
        train_set.targets,
        data.batch_size,
        device,
        data.crop_padding,
        data.flip,
        info.rank,
        info.world_size,
    )
    aux_batches = None
    if recipe.uses_aux:
        if benchmark.aux is None:
            raise ConfigError(
                f"method {config.method.name!r} needs auxiliary outliers; "
                f"benchmark {benchmark.name!r} has none"
            )
        aux = _in_memory(benchmark.aux, "auxiliary")
        aux_batches = DeviceBatches(
            aux.images,
            aux.targets,
            data.aux_batch_size or data.batch_size,
            device,
            data.crop_padding,
            data.flip,
            info.rank,
            info.world_size,
        )
    optimizer = build_optimizer(model, cfg)
    steps_per_epoch = len(id_batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg)
    )
    start_epoch = 0
    state = checkpoint.load_latest(run_dir) if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        recipe.load_state_dict(state["recipe"])
        set_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
    if info.is_main:
        write_run_files(run_dir, config, benchmark, device, info.world_size)
        log = [row for row in read_log(run_dir) if row.get("epoch", 0) < start_epoch]
        atomic_write_text(run_dir / "train_log.jsonl", "".join(_json_line(row) for row in log))
    barrier(info)
    net: nn.Module = TrainView(model)
    if cfg.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    if info.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    use_amp = cfg.amp and device.type == "cuda"
    started, images, step_seconds = time.perf_counter(), 0, 0.0
    accuracy = float("nan")
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        recipe.on_epoch_start(epoch, cfg.epochs)
        model.train()
        aux_iter = (
            aux_batches.epoch(cfg.seed, epoch, stream=1, steps=steps_per_epoch)
            if aux_batches
            else None
        )
        progress = tqdm(
            id_batches.epoch(cfg.seed, epoch),
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=cfg.quiet or not info.is_main,
            leave=False,
        )
        logs: dict[str, float] = {}
        for x, y in progress:
            x_aux = next(aux_iter)[0] if aux_iter is not None else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, logs = recipe.loss(net, Batch(x, y, x_aux))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            images += len(x) * info.world_size
            progress.set_postfix(loss=f"{float(loss.detach()):.3f}")
        step_seconds += time.perf_counter() - epoch_start
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            accuracy = id_accuracy(model, test_set, device)
        if info.is_main:
            row = {
                "epoch": epoch,
                "loss": float(loss.detach()),
                **logs,
                "lr": scheduler.get_last_lr()[0],
                "id_accuracy": accuracy,
                "seconds": time.perf_counter() - started,
            }
            with open(run_dir / "train_log.jsonl", "a") as handle:
                handle.write(_json_line(row))
            checkpoint.save(
                run_dir,
                {
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "recipe": recipe.state_dict(),
                    "rng": rng_state(),
                },
            )
        barrier(info)
    recipe.on_train_end(model, {"benchmark": benchmark, "device": device, "run_dir": run_dir})
    if not cfg.eval_every or math.isnan(accuracy):
        accuracy = id_accuracy(model, test_set, device)
    seconds = time.perf_counter() - started
    # Throughput of the training steps alone (accuracy evaluation and checkpoints excluded).
    result = TrainResult(run_dir, cfg.epochs, accuracy, seconds, images / max(step_seconds, 1e-9))
    if info.is_main:
        atomic_torch_save(run_dir / "model.pt", model.state_dict())
        atomic_write_json(
            run_dir / "train_summary.json",
            {
                "epochs": cfg.epochs,
                "final_id_accuracy": accuracy,
                "seconds_this_session": seconds,
                "images_per_second": result.images_per_second,
            },
        )
    return result


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row) + "\n"
