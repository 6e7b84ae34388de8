"""The one training loop of oodlab: every method plugs in through a recipe.

Per step it draws the ID views (and, for recipes that use them, a batch of auxiliary
outliers), asks the recipe for the loss — computed from one concatenated forward pass — and
takes an optimiser step; the learning-rate schedule advances per step. After each epoch it
logs to ``train_log.jsonl``, measures ID test accuracy (every ``eval_every`` epochs) and
writes an atomic, verified checkpoint. A method may have several stages (PASCL's auxiliary
branch fine-tuning), each with its own optimiser.

``resume=True`` restarts from the last good checkpoint and replays the interrupted epoch
exactly: batch order and augmentation are functions of ``(seed, epoch)`` and the global RNG
states are restored, so on the CPU a resumed run ends bit-identical to an uninterrupted one.
Under ``torchrun`` the model is wrapped in DistributedDataParallel, each process trains on
its share of every global batch, and only rank 0 writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from oodlab.config import RunConfig
from oodlab.data import DeviceBatchLoader, EpochLoader, IdAuxLoader, build_benchmark
from oodlab.data.benchmarks import Benchmark
from oodlab.distributed import DistInfo, barrier, init_from_env, shutdown
from oodlab.errors import ConfigError
from oodlab.io import atomic_write_json
from oodlab.locks import folder_lock
from oodlab.train import checkpoint
from oodlab.train.batches import Loader, as_views, build_loader, eval_batches, with_transform
from oodlab.train.guards import check_resumable, check_run_config, prepare_run_dir
from oodlab.train.keep import BestKeeper, accuracy_set
from oodlab.train.nonfinite import NonFiniteGuard
from oodlab.train.optim import build_optimizer, build_scheduler, lr_factor
from oodlab.train.progress import Progress
from oodlab.train.recipes import Batch, Recipe, Stage, TrainContext, TrainView, build_recipe
from oodlab.train.run import (
    append_log,
    build_model,
    load_weights,
    read_log,
    rewrite_log,
    save_final_model,
    write_run_files,
)
from oodlab.train.seeding import seed_everything


@dataclass
class TrainResult:
    """What a finished run reports (also written to ``train_summary.json``)."""

    run_dir: Path
    epochs: int
    final_accuracy: float
    seconds: float
    images_per_second: float  # NaN when this session took no training step
    is_main: bool = True  # rank 0 (or the only process): the one that prints the summary


@torch.no_grad()
def id_accuracy(
    model: nn.Module, recipe: Recipe, dataset: Any, device: torch.device, batch_size: int = 512
) -> float:
    """Top-1 accuracy of ``recipe.predict(model, x)`` on the ID test set."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in eval_batches(dataset, batch_size, device):
        correct += int((recipe.predict(model, x) == y).sum())
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def uses_channels_last(option: bool | None, device: torch.device) -> bool:
    """``channels_last``: the option if set, else on for CUDA (NHWC convolutions), off elsewhere."""
    return device.type == "cuda" if option is None else bool(option)


def train(config: RunConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train ``config`` into ``run_dir``; with ``resume``, continue from its last checkpoint.

    Raises:
        ConfigError: ``run_dir`` already holds a run and ``resume`` is false; with
            ``resume``, it holds a run of another config (:func:`check_same_config`: only the
            epochs, device, verbosity and dataset folder may change); or the config is
            invalid (unknown method or model, bad options).
        CheckpointError: ``resume`` finds only corrupted checkpoints.
    """
    run_dir = Path(run_dir)
    check_run_config(config)  # bad options fail here, before the folder is touched
    info, device = init_from_env(config.train.device)
    try:
        with folder_lock(run_dir, enabled=info.is_main):
            prepare_run_dir(run_dir, config, resume, ("checkpoint.pt", "model.pt"))
            return _Run(config, run_dir, info, device).fit(resume)
    finally:
        shutdown(info)


class _Run:
    """One training run: benchmark, recipe, model and the stage / epoch / step loops."""

    def __init__(
        self, config: RunConfig, run_dir: Path, info: DistInfo, device: torch.device
    ) -> None:
        self.config, self.run_dir, self.info, self.device = config, run_dir, info, device
        data = config.data
        self.benchmark: Benchmark = build_benchmark(
            data.benchmark, data.data_root, seed=data.seed, **data.options
        )
        counts = self.benchmark.class_counts
        self.recipe = build_recipe(config.method.name, config.method.options, counts)
        seed_everything(config.train.seed)
        model = build_model(
            config.model,
            config.method,
            self.benchmark.num_classes,
            self.benchmark.image_shape[0],
            self.recipe,
            pretrained=True,
        ).to(device)
        # GPU defaults: NHWC layout and cuDNN autotuning (fixed input shapes) on CUDA.
        self.channels_last = uses_channels_last(config.train.channels_last, device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.images = 0
        self.step_seconds = 0.0
        self.accuracy = float("nan")
        self.num_stages = 1
        self.quiet = config.train.quiet or not info.is_main
        self.epochs_after_stage = 0  # epochs of the stages after the running one (for the ETA)
        self.last_eval = self.last_checkpoint = time.monotonic()  # for the *_minutes intervals
        self.progress = Progress(
            run_dir, enabled=info.is_main, tensorboard=config.train.tensorboard
        )

    def fit(self, resume: bool) -> TrainResult:
        started = time.perf_counter()
        state = checkpoint.load_latest(self.run_dir) if resume else None
        done = (0, 0) if state is None else (int(state.get("stage") or 0), int(state["epoch"]))
        stages = self.recipe.stages(self.config)
        if state is not None:
            self.recipe.load_state_dict(state["recipe"])
            check_resumable(self.run_dir, self.benchmark, done, [s.train.epochs for s in stages])
        if self.info.is_main:
            keep = [
                r for r in read_log(self.run_dir) if (r.get("stage_index", 0), r["epoch"]) < done
            ]  # read first: a corrupted log stops the resume before anything is written
            write_run_files(
                self.run_dir, self.config, self.benchmark, self.device, self.info.world_size
            )
            rewrite_log(self.run_dir, keep)
        barrier(self.info)
        self.num_stages = len(stages)
        try:
            for index, stage in enumerate(stages):
                if index >= done[0]:
                    self.epochs_after_stage = sum(s.train.epochs for s in stages[index + 1 :])
                    self._stage(index, stage, state if index == done[0] else None)
        finally:
            self.progress.close()
        context = TrainContext(
            self.config, self.benchmark, self.device, self.run_dir, self.info.is_main
        )
        self.recipe.on_train_end(self.model, context)
        kept: dict[str, Any] = {"rule": "last"}
        if self.config.train.keep == "best_val_acc":
            kept = self._keeper().restore(self.model)
        self.accuracy = id_accuracy(self.model, self.recipe, self.benchmark.test, self.device)
        seconds = time.perf_counter() - started
        epochs = sum(s.train.epochs for s in stages)
        # Throughput of the training steps alone (evaluation and checkpoints excluded).
        rate = self.images / self.step_seconds if self.step_seconds else float("nan")
        result = TrainResult(
            self.run_dir, epochs, self.accuracy, seconds, rate, is_main=self.info.is_main
        )
        if self.info.is_main:
            save_final_model(self.run_dir, self.model, self.config, self.benchmark)
            atomic_write_json(
                self.run_dir / "train_summary.json",
                {
                    "epochs": epochs,
                    "final_id_accuracy": self.accuracy,
                    "kept": kept,
                    "seconds_this_session": seconds,
                    "images_per_second": rate if math.isfinite(rate) else None,
                },
            )
        barrier(self.info)
        return result

    def _stage(self, index: int, stage: Stage, state: dict[str, Any] | None) -> None:
        cfg, data, info, recipe, device = (
            stage.train,
            self.config.data,
            self.info,
            self.recipe,
            self.device,
        )
        recipe.on_stage_start(stage, self.model)
        if state is not None:
            load_weights(self.model, state["model"], f"the checkpoint in {self.run_dir}")
        global_batch = stage.batch_size or data.batch_size
        train_set, aux_set = self.benchmark.train, self.benchmark.aux
        if stage.transform is not None:
            train_set = with_transform(train_set, stage.transform)
        if stage.aux_transform is not None and aux_set is not None:
            aux_set = with_transform(aux_set, stage.aux_transform)
        id_loader = self._loader(train_set, global_batch, index, 0, stage.views)
        loader: Loader = id_loader
        if stage.uses_aux:
            if aux_set is None:
                raise ConfigError(
                    f"method {self.config.method.name!r} needs auxiliary outliers; benchmark "
                    f"{self.benchmark.name!r} has none"
                )
            size = stage.aux_batch_size or data.aux_batch_size or global_batch
            loader = IdAuxLoader(id_loader, self._loader(aux_set, size, index, 1, 1))
        optimizer = build_optimizer(
            recipe.param_groups(self.model, cfg), cfg, fused=device.type == "cuda"
        )
        scheduler = build_scheduler(optimizer, len(id_loader), cfg)
        amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
        dtype = torch.float16 if cfg.amp_dtype == "float16" else torch.bfloat16
        fp16 = amp and dtype == torch.float16 and device.type == "cuda"
        scaler = torch.amp.GradScaler(device.type, enabled=fp16)
        start_epoch, step = 0, 0
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            loader.load_state_dict(state["loaders"])
            checkpoint.set_rng_state(state["rng"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
        net: nn.Module = TrainView(self.model)
        if info.enabled:
            net = nn.parallel.DistributedDataParallel(
                net,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=recipe.find_unused_parameters,
            )
        if cfg.compile:
            net = torch.compile(net)  # type: ignore[assignment]
        max_steps = cfg.max_steps or cfg.epochs * len(id_loader)
        self.progress.start()
        guard = NonFiniteGuard(cfg.nonfinite, device, self.run_dir)
        for epoch in range(start_epoch, cfg.epochs):
            if step >= max_steps:
                break
            steps = min(len(id_loader), max_steps - step)
            recipe.on_epoch_start(epoch, stage)
            recipe.train_mode(self.model, stage)
            where = {"stage": stage.name, "stage_index": index, "epoch": epoch}
            tic, totals, lr = time.perf_counter(), dict[str, Tensor](), float("nan")
            desc = f"{stage.name} {epoch + 1}/{cfg.epochs}"
            guard.skipped, at = 0, f"epoch {epoch} of stage {stage.name!r}"
            bar = tqdm(loader, desc, steps, leave=True, disable=self.quiet)
            show_every = max(1, steps // 50)  # the running loss costs a device sync
            for i, item in enumerate(bar):
                (x, y), x_aux = item if stage.uses_aux else (item, None)
                views = as_views(x, device)
                if self.channels_last:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                aux = None if x_aux is None else as_views(x_aux[0], device)[0]
                y = y.to(device, non_blocking=True)
                batch = Batch(views, y, aux, self.model, stage.name, epoch, step)
                with torch.autocast(device.type, dtype=dtype, enabled=amp):
                    loss, logs = recipe.loss(net, batch)
                optimizer.zero_grad(set_to_none=True)
                skip = guard.observe({"loss": loss, **logs}, step, at)
                if not skip:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                lr = optimizer.param_groups[0]["lr"]  # the rate this step used
                scheduler.step()
                if not skip:
                    recipe.after_step(batch)
                step += 1
                for name, value in {"loss": loss, **logs}.items():
                    if skip:
                        break
                    value = value.detach().float()
                    totals[name] = totals[name] + value if name in totals else value
                self.images += global_batch
                if not self.quiet and (i + 1) % show_every == 0 and "loss" in totals:
                    bar.set_postfix(loss=f"{float(totals['loss']) / (i + 1):.4f}", refresh=False)
                if cfg.log_every and step % cfg.log_every == 0 and info.is_main:
                    row = {"scope": "step", **where, "step": step, "loss": float(loss.detach())}
                    append_log(self.run_dir, [row])
                    self.progress.mirror(row)
                if i + 1 == steps < len(id_loader):  # a step budget ends inside the epoch
                    break
            guard.end_of_epoch(self.model, steps, at)  # before anything of the epoch is saved
            means = self._mean(totals, steps - guard.skipped)  # syncs the device before timing
            seconds = time.perf_counter() - tic
            self.step_seconds += seconds
            finished = epoch + 1 if step < max_steps else cfg.epochs
            row = {"scope": "epoch", **where, "step": step, **means, "lr": lr}
            row["images_per_s"] = steps * global_batch / seconds
            if cfg.nonfinite == "skip":
                row["skipped_steps"] = guard.skipped
            last = index == self.num_stages - 1 and finished == cfg.epochs
            measure = cfg.eval_every or cfg.eval_minutes
            if info.is_main and measure and (last or self._due(epoch + 1, cfg, "eval")):
                self.last_eval = time.monotonic()
                self.accuracy = id_accuracy(self.model, recipe, self.benchmark.test, device)
                row["id_accuracy"] = self.accuracy
                if self.config.train.keep == "best_val_acc" and index == self.num_stages - 1:
                    self._offer_best(stage.name, finished)
            if info.is_main:
                append_log(self.run_dir, [row])
                self.progress.epoch(
                    row, cfg.epochs, cfg.epochs - finished + self.epochs_after_stage
                )
            if info.is_main and (finished == cfg.epochs or self._due(finished, cfg, "checkpoint")):
                self.last_checkpoint = time.monotonic()
                ckpt: dict[str, Any] = {"stage": index, "epoch": finished, "step": step}
                ckpt |= {"model": self.model.state_dict(), "optimizer": optimizer.state_dict()}
                ckpt |= {"scheduler": scheduler.state_dict(), "scaler": scaler.state_dict()}
                ckpt |= {"recipe": recipe.state_dict(), "rng": checkpoint.rng_state()}
                ckpt["loaders"] = loader.state_dict()
                checkpoint.save(self.run_dir, ckpt)
            barrier(info)

    def _due(self, epochs: int, cfg: Any, what: str) -> bool:
        """Whether ``what`` (``eval`` or ``checkpoint``) is due after ``epochs`` epochs: every
        ``{what}_every`` epochs, or ``{what}_minutes`` after the last one."""
        every, minutes = getattr(cfg, f"{what}_every"), getattr(cfg, f"{what}_minutes")
        since = time.monotonic() - getattr(self, f"last_{what}")
        return bool(every and epochs % every == 0) or (
            minutes is not None and since >= 60 * minutes
        )

    def _keeper(self) -> BestKeeper:
        return BestKeeper(self.run_dir, accuracy_set(self.benchmark)[1])

    def _offer_best(self, stage: str, epoch: int) -> None:
        """``train.keep: best_val_acc``: offer this epoch's model to the keeper."""
        measured, _ = accuracy_set(self.benchmark)
        accuracy = (
            self.accuracy
            if measured is self.benchmark.test
            else id_accuracy(self.model, self.recipe, measured, self.device)
        )
        self._keeper().offer(self.model, accuracy, stage, epoch)

    def _loader(
        self, dataset: Any, batch_size: int, stage: int, stream: int, views: int
    ) -> DeviceBatchLoader | EpochLoader:
        seed = (self.config.train.seed * 1_000_003 + stage) * 7919 + stream
        return build_loader(
            dataset,
            batch_size,
            self.config.data,
            self.device,
            seed,
            views,
            self.info.rank,
            self.info.world_size,
        )

    def _mean(self, totals: dict[str, Tensor], steps: int) -> dict[str, float]:
        """Epoch means of the logged terms, averaged over processes (one sync per epoch)."""
        if not totals:
            return {}
        values = torch.stack([v.to(self.device) for v in totals.values()])
        if self.info.enabled:
            dist.all_reduce(values)
            values /= self.info.world_size
        means = (values / max(steps, 1)).tolist()
        return {k: (v if math.isfinite(v) else float("nan")) for k, v in zip(totals, means)}


__all__ = ["TrainResult", "id_accuracy", "lr_factor", "train"]
