"""The run configuration (what ``oodlab train CONFIG`` reads, validates and saves) and, re-exported
from :mod:`oodlab.config_base`, the machinery every config dataclass shares.

* :class:`RunConfig` = :class:`DataConfig` + :class:`ModelConfig` + :class:`TrainConfig` +
  :class:`MethodConfig`, each frozen and validated in ``__post_init__``;
* :func:`from_dict` builds a (possibly nested) dataclass from plain data, failing
  loudly on unknown keys and wrong types (one line, with the nearest valid key);
* :func:`apply_overrides` applies ``a.b=value`` strings (values parsed as YAML);
* :func:`to_dict` / :func:`save_resolved` write the fully resolved config.

Validation of values (ranges, choices) lives in each dataclass's ``__post_init__``,
which also runs again on ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from oodlab.config_base import (
    YamlLoader,
    _coerce,
    apply_overrides,
    check,
    dump_yaml,
    find_config,
    from_dict,
    load_config,
    load_yaml,
    packaged_configs,
    parse_override,
    save_resolved,
    to_dict,
)

__all__ = [
    "DataConfig",
    "MethodConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "YamlLoader",
    "_coerce",
    "apply_overrides",
    "check",
    "dump_yaml",
    "find_config",
    "from_dict",
    "load_config",
    "load_yaml",
    "packaged_configs",
    "parse_override",
    "save_resolved",
    "to_dict",
    "valid_device",
]


# ---------------------------------------------------------------------------------------
# The run configuration: what `oodlab train CONFIG` reads, validates and saves.
# ---------------------------------------------------------------------------------------


def valid_device(device: str) -> bool:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (availability is checked at run time)."""
    return device in ("auto", "cpu", "cuda", "mps") or (
        device.startswith("cuda:") and device[5:].isdigit()
    )


@dataclass(frozen=True)
class DataConfig:
    """Which benchmark to train on and how batches are drawn.

    Attributes:
        benchmark: a preset of ``oodlab list benchmarks`` (e.g. ``fmnist_lt``, ``cifar10_lt``).
        data_root: folder holding the datasets (``None``: the preset's default places).
        seed: seed of the benchmark construction (long-tail draw, subsets).
        options: the preset's own options (e.g. ``n_max``, ``imbalance_ratio``).
        batch_size: ID images per step, global over all processes (each of ``W`` processes
            takes ``batch_size / W``); a method's stage may override it.
        aux_batch_size: auxiliary outliers per step; ``None`` = ``batch_size`` (PASCL, ImOOD).
        crop_padding: padding of the random crop of in-memory training batches, applied on
            the device (0 disables the crop).
        flip: random horizontal flips of in-memory training batches.
        color_jitter: SimCLR-style colour jitter (0.4, p = 0.8) and grayscale (p = 0.2) of
            in-memory batches on the device (PASCL / ImOOD views; no hue jitter).
        num_workers: DataLoader workers for datasets not held in memory as uint8 tensors
            (those are augmented by their own transform, not by the options above).
        persistent_workers: with ``num_workers > 0``, keep the workers across epochs (one
            DataLoader; they re-seed per epoch, so batches are the same as without).
    """

    benchmark: str = "synthetic"
    data_root: str | None = None
    seed: int = 0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int = 128
    aux_batch_size: int | None = None
    crop_padding: int = 4
    flip: bool = True
    color_jitter: bool = False
    num_workers: int = 0
    persistent_workers: bool = True

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        check(
            self.aux_batch_size is None or self.aux_batch_size >= 1,
            f"data.aux_batch_size must be >= 1 or null, got {self.aux_batch_size}",
        )
        check(self.crop_padding >= 0, f"data.crop_padding must be >= 0, got {self.crop_padding}")
        check(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        check(0 <= self.seed < 2**32, f"data.seed must be in [0, 2**32), got {self.seed}")


@dataclass(frozen=True)
class ModelConfig:
    """A registered model (``oodlab list models``), its options, and input normalisation.

    Attributes:
        name: the model's registry name (``small_cnn``, ``resnet18_cifar``, ``resnet50``, ...).
        options: the model's own options (e.g. ``width``, ``norm``).
        mean, std: per-channel normalisation applied inside the model, so that training and
            evaluation both feed images in [0, 1] (``null``: none, as PASCL / ImOOD).
        weights: a local file of pretrained backbone weights loaded before training (a
            torchvision ``.pth`` state dict, or BiT's ``.npz``); nothing is downloaded. A
            classifier of another class count is dropped (``null``: train from scratch).
    """

    name: str = "small_cnn"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    mean: list[float] | None = None
    std: list[float] | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        check(
            (self.mean is None) == (self.std is None),
            "model.mean and model.std go together: give both or neither",
        )
        check(
            self.std is None or all(s > 0 for s in self.std),
            f"model.std must be > 0, got {self.std}",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation (of the main stage; a method may add stages with their own settings).

    Attributes:
        epochs: passes over the ID training set.
        optimizer: ``adam`` (PASCL/ImOOD/PATT CIFAR: lr 1e-3, wd 5e-4, L2 not AdamW) or
            ``sgd`` (momentum, Nesterov: ImageNet, ASCOOD, NPOS).
        lr, weight_decay, momentum, nesterov: the optimiser's settings.
        schedule: ``cosine`` (stepped per epoch, PASCL), ``cosine_iter`` (per step, ASCOOD),
            ``multistep`` (``milestones`` in epochs), ``multistep_iter`` (in steps, MOS), or
            ``constant``.
        milestones, gamma: boundaries and factor of the multistep schedules.
        min_lr: the cosine schedules end at ``min_lr`` (ASCOOD 1e-6, NPOS lr·1e-3).
        warmup_epochs, warmup_steps: linear warm-up from 0 (their sum, in steps).
        head_lr_factor: learning-rate factor of the final linear layer (ASCOOD's fc_lr_factor).
        max_steps: stop after this many optimiser steps (MOS's step budget); ``null``: none.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        amp: mixed precision; ``null`` = on for CUDA, off on the CPU.
        amp_dtype: ``bfloat16`` (no loss scaling) or ``float16`` (with a gradient scaler).
        channels_last: NHWC memory layout; ``null`` = on for CUDA, off elsewhere (the loop
            also turns cuDNN autotuning and fused Adam/SGD on for CUDA).
        compile: ``torch.compile`` the model.
        eval_every: ID test accuracy every this many epochs (0 = only at the end).
        eval_minutes: also measure it when this many minutes have passed since the last
            measurement (``null``: by epochs only). Time-based, so with ``keep: best_val_acc``
            the kept epoch may differ between two runs; training itself is unaffected.
        checkpoint_every: write the checkpoint every this many epochs (0 = only at the end of
            each stage and by ``checkpoint_minutes``); the end of every stage always writes
            one. A resume replays the epochs after the last checkpoint, bit-identically.
        checkpoint_minutes: also write one when this many minutes have passed since the last
            (``null``: by epochs only). E.g. ``checkpoint_every: 0, checkpoint_minutes: 10``
            on a fast GPU, where a checkpoint per short epoch costs a noticeable share.
        keep: final model: ``last`` epoch or ``best_val_acc`` (:mod:`oodlab.train.keep`).
        log_every: also log every this many steps (0 = once per epoch).
        seed: seed of initialisation, batch order and augmentation.
        quiet: no progress bar (rank 0 still prints one line per epoch).
        tensorboard: also write the train log as TensorBoard scalars to RUN_DIR/tensorboard
            (needs ``pip install 'oodlab[tensorboard]'``).
        nonfinite: what a non-finite loss does: ``stop`` the run at that step (one line naming
            the term and the step; the last good checkpoint is kept), or ``skip`` the step (no
            update; the skipped steps are counted in the log).
    """

    epochs: int = 10
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    schedule: Literal["cosine", "cosine_iter", "multistep", "multistep_iter", "constant"] = "cosine"
    milestones: list[int] = dataclasses.field(default_factory=list)
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: int = 0
    warmup_steps: int = 0
    head_lr_factor: float = 1.0
    max_steps: int | None = None
    device: str = "auto"
    amp: bool | None = None
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: bool | None = None
    compile: bool = False
    eval_every: int = 1
    eval_minutes: float | None = None
    checkpoint_every: int = 1
    checkpoint_minutes: float | None = None
    keep: Literal["last", "best_val_acc"] = "last"
    log_every: int = 0
    seed: int = 0
    quiet: bool = False
    tensorboard: bool = False
    nonfinite: Literal["stop", "skip"] = "stop"

    def __post_init__(self) -> None:
        check(0 <= self.seed < 2**32, f"train.seed must be in [0, 2**32), got {self.seed}")
        check(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        check(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        check(0 <= self.min_lr <= self.lr, f"train.min_lr must be in [0, lr], got {self.min_lr}")
        check(self.warmup_epochs >= 0, "train.warmup_epochs must be >= 0")
        check(self.warmup_steps >= 0, "train.warmup_steps must be >= 0")
        check(self.head_lr_factor > 0, "train.head_lr_factor must be > 0")
        check(self.gamma > 0, f"train.gamma must be > 0, got {self.gamma}")
        check(
            list(self.milestones) == sorted(self.milestones),
            f"train.milestones must be increasing, got {self.milestones}",
        )
        check(
            self.max_steps is None or self.max_steps >= 1,
            f"train.max_steps must be >= 1 or null, got {self.max_steps}",
        )
        check(self.eval_every >= 0, f"train.eval_every must be >= 0, got {self.eval_every}")
        check(self.checkpoint_every >= 0, "train.checkpoint_every must be >= 0 (0 = by time)")
        for key in ("eval_minutes", "checkpoint_minutes"):
            value = getattr(self, key)
            check(value is None or value > 0, f"train.{key} must be > 0 or null, got {value}")
        check(self.log_every >= 0, f"train.log_every must be >= 0, got {self.log_every}")
        check(
            valid_device(self.device),
            f"train.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}",
        )


@dataclass(frozen=True)
class MethodConfig:
    """A training method (``oodlab list methods``) and its hyper-parameters (validated against
    the method's own dataclass when the run starts)."""

    name: str = "ce"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; saved resolved as ``config.yaml`` in the run folder."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
