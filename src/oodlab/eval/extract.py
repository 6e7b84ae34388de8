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
hook. The protocol is used only when ``head(features(x))`` equals ``model(x)`` on the first
batch (:func:`model_protocol` says which way a model is read).

The disk cache lives in ``ExtractConfig.cache_dir`` (default ``.oodlab_cache`` in the working
directory; ``oodlab eval --cache-dir``), one ``<model fingerprint>/<dataset hash>.pt`` file per
(weights, dataset) pair; delete the folder to free the space, nothing else refers to it.
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
    """Runs ``features``/``head``/``extra_outputs`` of a model, whatever its interface.

    Which way the model is read is decided on the first batch and then kept
    (:attr:`protocol`): oodlab's ``features``/``head`` split only when ``head(features(x))``
    equals ``model(x)`` there (torchvision's ``swin_t`` has a ``features`` and a ``head``
    that do not compose: its norm, permute and pool sit between them); otherwise the input of
    the last ``nn.Linear`` (in registration order) is captured with a hook, and that layer's
    output must itself equal ``model(x)``, else the model is refused in one line.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.has_split = callable(getattr(model, "features", None)) and callable(
            getattr(model, "head", None)
        )
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not self.has_split and not linears:
            raise DataError(
                f"{type(model).__name__} has neither features()/head() methods nor an "
                "nn.Linear classifier; give it features(x) and head(z) (see oodlab.types)"
            )
        self._last_linear = linears[-1] if linears else None
        self.native: bool | None = None  # decided on the first batch
        self.linear = linear_head(model) if self.has_split else self._last_linear

    @property
    def protocol(self) -> str:
        """How the model is read: ``"features/head"`` or ``"last-linear hook (<layer>)"``."""
        if self.native is None:
            return "undecided (no batch seen yet)"
        if self.native:
            return "features/head"
        name = next(n for n, m in self.model.named_modules() if m is self._last_linear)
        return f"last-linear hook ({name})"

    def _decide(self, x: Tensor) -> None:
        if not self.has_split:
            self.native = False
            return
        try:
            reference = self.model(x)
        except NotImplementedError:  # a module with features/head and no forward of its own
            self.native = True
            return
        split = self.model.head(self.model.features(x))  # type: ignore[operator]
        self.native = _same_logits(split, reference)
        if not self.native:
            if self._last_linear is None:
                raise DataError(
                    f"{type(self.model).__name__}: head(features(x)) does not equal model(x) and "
                    "the model has no nn.Linear classifier to read; make forward = head∘features"
                )
            self.linear = self._last_linear

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if self.native is None:
            self._decide(x)
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
        captured: list[tuple[Tensor, Tensor]] = []
        assert self._last_linear is not None  # checked in __init__ / _decide
        handle = self._last_linear.register_forward_hook(
            lambda _m, a, out: captured.append((a[0], out))
        )
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if not captured or not _same_logits(captured[-1][1], logits):
            raise DataError(
                f"cannot read {type(self.model).__name__}: its last nn.Linear "
                f"({self.protocol.split('(')[-1].rstrip(')')}) does not produce model(x); give "
                "the model features(x) and head(z) with forward = head(features(x))"
            )
        return logits, captured[-1][0].flatten(1), {}


def _same_logits(candidate: Tensor, reference: Tensor) -> bool:
    """Whether two logit tensors agree (same shape, equal up to float round-off)."""
    if not isinstance(candidate, Tensor) or candidate.shape != reference.shape:
        return False
    scale = float(reference.detach().abs().max()) if reference.numel() else 0.0
    return bool(torch.allclose(candidate, reference, rtol=1e-4, atol=1e-5 * max(1.0, scale)))


def model_protocol(model: nn.Module, dataset: Dataset[Any], device: str = "auto") -> str:
    """How extraction reads ``model`` (see :class:`_Forward`), decided on two images."""
    x = torch.stack([torch.as_tensor(dataset[i][0]) for i in range(min(2, len(dataset)))])  # type: ignore[arg-type]
    forward = _Forward(model)
    with _eval_mode(model), torch.inference_mode():
        forward._decide(x.to(resolve_device(device)))
    return forward.protocol


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
