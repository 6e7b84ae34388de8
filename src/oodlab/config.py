"""Typed, frozen configuration: YAML → dotted overrides → validated dataclasses → saved.

Every configurable part of oodlab owns a small frozen dataclass next to its code.
This module holds the machinery shared by all of them:

* :func:`from_dict` builds a (possibly nested) dataclass from plain data, failing
  loudly on unknown keys and wrong types (one line, with the nearest valid key);
* :func:`apply_overrides` applies ``a.b=value`` strings (values parsed as YAML);
* :func:`to_dict` / :func:`save_resolved` write the fully resolved config.

Validation of values (ranges, choices) lives in each dataclass's ``__post_init__``,
which also runs again on ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from oodlab.errors import ConfigError
from oodlab.io import atomic_write_text

C = TypeVar("C")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``, converting only lossless cases."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: got {value!r}, expected one of {list(choices)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: got {value!r}, expected {_type_name(tp)}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: got {value!r}, expected a list")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: got {value!r}, expected a mapping")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {
            _coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: got {value!r}, expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: got {value!r}, expected a finite number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: got {value!r}, expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: got {value!r}, expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: got {value!r}, expected a string")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: got {value!r}, expected {_type_name(tp)}")
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys or wrong types raise ``ConfigError``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(sorted(fields))}."
        )
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(config: Any) -> Any:
    """Plain YAML/JSON-ready data from a dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, list | tuple):
        return [to_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a float as YAML 1.2 does (YAML 1.1, and so
    ``yaml.safe_load``, wants a dot, ``1.0e-3``, and reads ``1e-3`` as a string)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (``["a", "b"]``, value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.subkey=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key; write e.g. train.lr=0.1")
    if raw == "":
        return key.split("."), ""
    try:
        return key.split("."), yaml.load(raw, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(
            f"override {text!r}: the value is not valid YAML ({first}); write e.g. "
            f"{key}=[1, 2] or quote a string: {key}='text'"
        ) from None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=value`` override applied."""
    result: dict[str, Any] = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = result
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {key!r} is not a section")
            node = child
        node[keys[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def packaged_configs() -> Path:
    """The folder of the configs shipped with oodlab (``oodlab/configs`` in an installed wheel;
    the repository's ``configs/`` when oodlab runs from a source checkout)."""
    here = Path(__file__).resolve().parent
    installed = here / "configs"
    return installed if installed.is_dir() else here.parents[1] / "configs"


def find_config(path: str | Path) -> Path:
    """``path`` if it exists, else the shipped config of that relative name (``configs/a/b.yaml``
    or ``a/b.yaml``), so ``oodlab train configs/fmnist_lt/oe.yaml`` works in any folder."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = packaged_configs()
    if not path.is_absolute():
        parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
        candidate = shipped.joinpath(*parts) if parts else shipped
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"config file {path} does not exist here nor among the shipped configs ({shipped}); "
        "pass a YAML file, e.g. configs/fmnist_lt/oe.yaml"
    )


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping raises one line."""
    path = find_config(path)
    try:
        text = path.read_text()
        data = yaml.load(text, Loader=YamlLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text (UTF-8) YAML file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    if data is None:
        raise ConfigError(
            f"config file {path} is empty; give at least the keys that differ from the defaults, "
            "e.g. `data: {benchmark: synthetic}` (see configs/)"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys, got {type(data).__name__}"
        )
    return data


def load_config(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """YAML file (optional) → dotted overrides → validated dataclass ``cls``."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(cls, apply_overrides(data, overrides))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save_resolved(config: Any, path: str | Path) -> Path:
    """Write the fully resolved config as YAML, atomically."""
    return atomic_write_text(path, dump_yaml(config))


def check(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)


__all__ = [
    "apply_overrides",
    "check",
    "dump_yaml",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_override",
    "save_resolved",
    "to_dict",
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
