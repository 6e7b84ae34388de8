"""One forward pass per (model weights, dataset): logits, features, labels, extra head outputs.

The result is cached on disk under a key derived from the SHA-256 of the model's
parameters and buffers and from the dataset's identity, so a second evaluation of the
same model on the same data never re-runs the network. Every score, OOD set and
hyper-parameter candidate is then served from these cached :class:`~oodlab.types.Outputs`.

A model either follows oodlab's protocol (``features(x)`` and ``head(z)``, optionally
``linear_head()``, ``head_input(z)`` — the linear head's input when ``head`` transforms the
features first, cached as ``extras["head_input"]`` — ``extra_outputs(z)`` and
``input_outputs(x)`` — outputs computed from the input by another path, such as PASCL's
classification branch ``class_logits``, which then gives the ID accuracy), or is any
``nn.Module`` whose last ``nn.Linear`` (in registration order) maps the penultimate features
to the logits, as in torchvision's classifiers; its input is then captured with a forward
pre-hook.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from oodlab.errors import CheckpointError, DataError
from oodlab.io import atomic_torch_save, safe_torch_load, state_dict_hash
from oodlab.types import HEAD_INPUT, Outputs, linear_head

# 2: ``extras["head_input"]`` for models with a ``head_input`` (ASCOOD); older entries lack it.
CACHE_FORMAT = 2


@dataclass(frozen=True)
class ExtractConfig:
    """How to run the forward passes.

    Attributes:
        batch_size: images per forward pass.
        num_workers: DataLoader worker processes (0 = in the main process).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        cache_dir: where extracted outputs are stored; ``None`` disables the disk cache.
        quiet: hide progress bars.
    """

    batch_size: int = 256
    num_workers: int = 0
    device: str = "auto"
    cache_dir: Path | None = Path(".oodlab_cache")
    quiet: bool = False


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_fingerprint(model: nn.Module) -> str:
    """Class name plus the SHA-256 of every parameter and buffer."""
    return f"{type(model).__name__}-{state_dict_hash(model)[:24]}"


def dataset_fingerprint(dataset: Dataset[Any]) -> str:
    """The dataset's own ``fingerprint()`` if it has one, else class, size, transform and samples.

    The fallback hashes up to 8 evenly spaced samples, so two different datasets of the same
    class and size do not share a cache entry.
    """
    own = getattr(dataset, "fingerprint", None)
    if callable(own):
        return str(own())
    n = len(dataset)  # type: ignore[arg-type]
    digest = hashlib.sha256(
        f"{type(dataset).__name__}|{n}|{getattr(dataset, 'transform', None)!r}".encode()
    )
    for index in sorted({round(i * (n - 1) / 7) for i in range(8)} if n else set()):
        x, y = dataset[index][:2]
        digest.update(torch.as_tensor(x).detach().cpu().contiguous().numpy().tobytes())
        digest.update(str(int(y)).encode())
    return f"{type(dataset).__name__}-n{n}-{digest.hexdigest()[:16]}"


class _Forward:
    """Runs ``features``/``head``/``extra_outputs`` of a model, whatever its interface."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.native = callable(getattr(model, "features", None)) and callable(
            getattr(model, "head", None)
        )
        self.linear = linear_head(model)
        if not self.native:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise DataError(
                    f"{type(model).__name__} has neither features()/head() methods nor an "
                    "nn.Linear classifier; give it features(x) and head(z) (see oodlab.types)"
                )
            self.linear = linears[-1]

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if self.native:
            z = self.model.features(x)  # type: ignore[operator]
            logits = self.model.head(z)  # type: ignore[operator]
            extra_fn = getattr(self.model, "extra_outputs", None)
            extras = extra_fn(z) if callable(extra_fn) else {}
            input_of_head = getattr(self.model, "head_input", None)
            head_input = input_of_head(z) if callable(input_of_head) else None
            if head_input is not None:  # e.g. ASCOOD's z-score of the raw features z
                extras = {**extras, HEAD_INPUT: head_input}
            input_fn = getattr(self.model, "input_outputs", None)  # e.g. a second branch
            if callable(input_fn):
                extras = {**extras, **input_fn(x)}
            return logits, z, extras
        captured: list[Tensor] = []
        assert self.linear is not None  # set in __init__ for non-native models
        handle = self.linear.register_forward_pre_hook(lambda _m, a: captured.append(a[0]))
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        return logits, captured[-1].flatten(1), {}


def _collect(model: nn.Module, dataset: Dataset[Any], config: ExtractConfig, desc: str) -> Outputs:
    device = resolve_device(config.device)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    forward = _Forward(model)
    logits, features, labels = [], [], []
    extras: dict[str, list[Tensor]] = {}
    with _eval_mode(model), torch.inference_mode():
        for batch in tqdm(loader, desc=desc, disable=config.quiet, leave=False):
            x, y = batch[0], batch[1]
            out, z, extra = forward(x.to(device, non_blocking=True))
            logits.append(out.float().cpu())
            features.append(z.float().cpu())
            labels.append(torch.as_tensor(y).long().cpu())
            for key, value in extra.items():
                extras.setdefault(key, []).append(value.float().cpu())
    if not logits:
        raise DataError(f"dataset {desc!r} is empty; nothing to evaluate")
    layer = forward.linear
    return Outputs(
        logits=torch.cat(logits),
        features=torch.cat(features),
        labels=torch.cat(labels),
        extras={k: torch.cat(v) for k, v in extras.items()},
        head_weight=None if layer is None else layer.weight.detach().float().cpu().clone(),
        head_bias=None
        if layer is None or layer.bias is None
        else layer.bias.detach().float().cpu().clone(),
    )


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _to_payload(outputs: Outputs, key: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "key": key,
        "logits": outputs.logits,
        "features": outputs.features,
        "labels": outputs.labels,
        "extras": dict(outputs.extras),
    }
    if outputs.head_weight is not None:
        payload["head_weight"] = outputs.head_weight
    if outputs.head_bias is not None:
        payload["head_bias"] = outputs.head_bias
    return payload


def _from_payload(payload: dict[str, Any]) -> Outputs:
    return Outputs(
        logits=payload["logits"],
        features=payload["features"],
        labels=payload["labels"],
        extras=dict(payload.get("extras", {})),
        head_weight=payload.get("head_weight"),
        head_bias=payload.get("head_bias"),
    )


def cache_path(cache_dir: Path, model_key: str, dataset_key: str) -> Path:
    name = hashlib.sha256(dataset_key.encode()).hexdigest()[:24]
    return Path(cache_dir) / model_key / f"{name}.pt"


def extract(
    model: nn.Module,
    dataset: Dataset[Any],
    config: ExtractConfig | None = None,
    *,
    name: str = "dataset",
    model_key: str | None = None,
    on_forward: Callable[[str], None] | None = None,
) -> Outputs:
    """Outputs of ``model`` on ``dataset``, from the disk cache when this pair was seen before.

    Args:
        model: the classifier (moved to the configured device by the caller or here).
        dataset: yields ``(image, label)``; label ``-1`` for OOD data.
        config: batch size, workers, device, cache folder, progress bar.
        name: shown in the progress bar.
        model_key: precomputed :func:`model_fingerprint` (saves re-hashing the weights).
        on_forward: called with ``name`` whenever the network actually runs (for counting).

    Returns:
        The cached or freshly computed :class:`~oodlab.types.Outputs` (CPU tensors).
    """
    config = config or ExtractConfig()
    model.to(resolve_device(config.device))
    model_key = model_key or model_fingerprint(model)
    dataset_key = dataset_fingerprint(dataset)
    path = (
        None if config.cache_dir is None else cache_path(config.cache_dir, model_key, dataset_key)
    )
    if path is not None and path.is_file():
        try:
            payload = safe_torch_load(path)
            if payload.get("format") == CACHE_FORMAT and payload.get("key") == dataset_key:
                return _from_payload(payload)
        except CheckpointError as exc:
            warnings.warn(f"ignoring unreadable cache entry: {exc}", stacklevel=2)
    if on_forward is not None:
        on_forward(name)
    outputs = _collect(model, dataset, config, desc=f"extract {name}")
    if path is not None:
        atomic_torch_save(path, _to_payload(outputs, dataset_key))
    return outputs
