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
directory; ``oodlab eval --cache-dir``), one ``<model fingerprint>/<dataset hash>/`` folder of
memory-mapped ``.npy`` arrays with their SHA-256 records per (weights, dataset) pair, written
batch by batch (:mod:`oodlab.eval.cache`); delete the folder to free the space, nothing else
refers to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm

from oodlab.errors import ConfigError, DataError
from oodlab.eval.cache import CACHE_FORMAT, FeatureDtype, OutputsWriter, entry_dir, load_entry
from oodlab.io import state_dict_hash
from oodlab.types import HEAD_INPUT, Outputs, linear_head

__all__ = ["CACHE_FORMAT", "ExtractConfig", "cache_path", "dataset_fingerprint", "extract"]


@dataclass(frozen=True)
class ExtractConfig:
    """How to run the forward passes.

    Attributes:
        batch_size: images per forward pass.
        num_workers: DataLoader worker processes (0 = in the main process).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        cache_dir: where extracted outputs are stored; ``None`` disables the disk cache.
        quiet: hide progress bars.
        feature_dtype: dtype of the cached ``features`` (``"float16"`` halves the largest
            array; the rounding error is stated in :mod:`oodlab.eval.cache`).
        autocast: ``"auto"`` runs the forward pass under bfloat16 autocast on CUDA and without
            autocast on the CPU (CPU outputs are bit-identical to a plain float32 pass);
            ``"bf16"`` always, ``"off"`` never. Outputs are stored as float32 either way, and
            a bfloat16 pass gets its own cache entry (its outputs differ from float32 ones by
            bfloat16 rounding, about 2⁻⁸ relative per operation).
        channels_last: 4-D inputs and the model in channels-last memory format (faster
            convolutions on CUDA; same values); ``None`` = on CUDA only. The model is left
            in that format after extraction.

    Notes:
        On CUDA each batch's outputs are copied to pinned host memory without blocking and
        written while the next batch runs. ``persistent_workers`` is not offered: each
        dataset is one pass of its own loader, so workers are never reused.
    """

    batch_size: int = 256
    num_workers: int = 0
    device: str = "auto"
    cache_dir: Path | None = Path(".oodlab_cache")
    quiet: bool = False
    feature_dtype: FeatureDtype = "float32"
    autocast: Literal["auto", "bf16", "off"] = "auto"
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if self.autocast not in ("auto", "bf16", "off"):
            raise ConfigError(f"autocast must be 'auto', 'bf16' or 'off', got {self.autocast!r}")

    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the forward pass on this config's device, or ``None``."""
        on_cuda = resolve_device(self.device).type == "cuda"
        use = self.autocast == "bf16" or (self.autocast == "auto" and on_cuda)
        return torch.bfloat16 if use else None


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_fingerprint(model: nn.Module) -> str:
    """Class name plus the SHA-256 of every parameter and buffer."""
    return f"{type(model).__name__}-{state_dict_hash(model)[:24]}"


def dataset_fingerprint(dataset: Dataset[Any]) -> str:
    """A key that differs for any two datasets that differ in any item.

    A dataset's own ``fingerprint()`` is used when it has one (oodlab's datasets hash their
    pixel arrays, or their files' paths, sizes and modification times). A ``TensorDataset``
    hashes its tensors, a ``Subset`` its parent's key and its indices, a ``ConcatDataset`` its
    parts; any other dataset hashes every item it yields (one pass over the data, no network).
    """
    own = getattr(dataset, "fingerprint", None)
    if callable(own):
        return str(own())
    name = type(dataset).__name__
    n = len(dataset)  # type: ignore[arg-type]
    digest = hashlib.sha256(f"{name}|{n}|{getattr(dataset, 'transform', None)!r}".encode())
    if isinstance(dataset, TensorDataset):
        for tensor in dataset.tensors:
            _hash_tensor(digest, tensor)
    elif isinstance(dataset, Subset):
        digest.update(dataset_fingerprint(dataset.dataset).encode())
        _hash_tensor(digest, torch.as_tensor(list(dataset.indices), dtype=torch.long))
    elif isinstance(dataset, ConcatDataset):
        for part in dataset.datasets:
            digest.update(dataset_fingerprint(part).encode())
    else:
        for index in range(n):
            x, y = dataset[index][:2]
            _hash_tensor(digest, torch.as_tensor(x))
            digest.update(str(int(y)).encode())
    return f"{name}-n{n}-{digest.hexdigest()[:24]}"


def _hash_tensor(digest: Any, tensor: Tensor) -> None:
    data = tensor.detach().cpu().contiguous()
    digest.update(f"{tuple(data.shape)}{data.dtype}".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")


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
    target = resolve_device(device)
    with _eval_mode(model.to(target)), torch.inference_mode():
        forward._decide(x.to(target))
    return forward.protocol


def _collect(
    model: nn.Module,
    dataset: Dataset[Any],
    config: ExtractConfig,
    desc: str,
    entry: Path | None = None,
    key: str = "",
) -> Outputs:
    """One pass over ``dataset``, each batch streamed to ``entry`` (or preallocated memory)."""
    device = resolve_device(config.device)
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    rows = len(dataset)  # type: ignore[arg-type]
    if rows == 0:
        raise DataError(f"dataset {desc!r} is empty; nothing to evaluate")
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    forward = _Forward(model)
    writer = OutputsWriter(rows, entry, key, config.feature_dtype)
    pending: tuple[Any, dict[str, Tensor]] | None = None  # CUDA: a batch still being copied
    try:
        with _eval_mode(model), torch.inference_mode(), _autocast(device, config):
            for batch in tqdm(loader, desc=desc, disable=config.quiet, leave=False):
                x, y = batch[0].to(device, non_blocking=True), batch[1]
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                out, z, extra = forward(x)
                arrays = {"logits": out, "features": z, "labels": torch.as_tensor(y)}
                arrays.update({f"extra.{k}": v for k, v in extra.items()})
                if device.type != "cuda":
                    writer.append(arrays)
                    continue
                staged = {k: _to_pinned(v) for k, v in arrays.items()}
                event = torch.cuda.Event()
                event.record()
                if pending is not None:  # written while this batch's copies run
                    pending[0].synchronize()
                    writer.append(pending[1])
                pending = (event, staged)
            if pending is not None:
                pending[0].synchronize()
                writer.append(pending[1])
        layer = forward.linear
        return writer.finish(
            None if layer is None else layer.weight.detach().float().cpu().clone(),
            None
            if layer is None or layer.bias is None
            else layer.bias.detach().float().cpu().clone(),
        )
    except BaseException:
        writer.abort()
        raise


def _autocast(device: torch.device, config: ExtractConfig) -> AbstractContextManager[Any]:
    dtype = config.autocast_dtype()
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _to_pinned(value: Tensor) -> Tensor:
    """A device tensor copied to pinned host memory without blocking (floats as float32)."""
    if value.device.type == "cpu":
        return value
    source = value.float() if value.is_floating_point() else value
    host = torch.empty(source.shape, dtype=source.dtype, pin_memory=True)
    return host.copy_(source, non_blocking=True)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def cache_path(
    cache_dir: Path,
    model_key: str,
    dataset_key: str,
    feature_dtype: FeatureDtype = "float32",
    autocast: torch.dtype | None = None,
) -> Path:
    """The folder of the cache entry for this model, dataset, feature dtype and autocast."""
    return entry_dir(cache_dir, model_key, _entry_key(dataset_key, feature_dtype, autocast))


def _entry_key(dataset_key: str, feature_dtype: str, autocast: torch.dtype | None = None) -> str:
    key = dataset_key if feature_dtype == "float32" else f"{dataset_key}|features={feature_dtype}"
    return key if autocast is None else f"{key}|autocast={str(autocast).removeprefix('torch.')}"


def config_key(dataset: Dataset[Any], config: ExtractConfig) -> str:
    """The cache key of ``dataset`` extracted with ``config`` (its dtypes, not its device)."""
    return _entry_key(dataset_fingerprint(dataset), config.feature_dtype, config.autocast_dtype())


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
        The cached or freshly computed :class:`~oodlab.types.Outputs` (CPU tensors; with a
        cache, ``logits``, ``features`` and the extras are memory-mapped from the entry).
    """
    config = config or ExtractConfig()
    model.to(resolve_device(config.device))
    model_key = model_key or model_fingerprint(model)
    key = config_key(dataset, config)
    entry = None if config.cache_dir is None else entry_dir(config.cache_dir, model_key, key)
    if entry is not None:
        cached = load_entry(entry, key)
        if cached is not None:
            return cached
    if on_forward is not None:
        on_forward(name)
    return _collect(model, dataset, config, desc=f"extract {name}", entry=entry, key=key)
