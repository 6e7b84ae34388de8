"""The extraction cache: one folder of ``.npy`` arrays per (model, dataset), written in chunks.

Layout of an entry ``<cache_dir>/<model key>/<dataset hash>/``::

    logits.npy  features.npy  labels.npy  extra.<name>.npy  head_weight.npy  head_bias.npy
    meta.json   format, the full dataset key, and per array its dtype, shape and SHA-256

* **Written in chunks.** :class:`OutputsWriter` streams each batch of the forward pass to the
  end of its ``.npy`` file (the header is written first: the row count is ``len(dataset)``),
  hashing the bytes as they go. Peak memory is one batch, not the whole payload, and no second
  copy is made to save it.
* **Atomic, read only if complete.** The arrays and ``meta.json`` (written last) go to a
  temporary folder beside the entry, which is renamed into place in one step. A reader sees
  either no entry or a complete one; if two processes extract the same pair, the second
  rename fails and that process reads the first one's entry.
* **Checked on load.** Every file's size and SHA-256 are compared with ``meta.json``; a
  mismatch prints one line, the entry is removed and recomputed.
* **Memory-mapped.** ``logits``, ``features`` and the extras are mapped from disk
  (copy-on-write, so an in-place change never reaches the file) and marked file-backed, so a
  streaming fit (:func:`oodlab.scores._stream.row_chunks`) keeps one chunk resident.
* **float16 features** (``feature_dtype="float16"``) halve the largest array. Each feature is
  then rounded to the nearest float16, a relative error of at most 2⁻¹¹ ≈ 4.9e-4 (unit
  roundoff) for magnitudes in [6.1e-5, 65504]; smaller ones lose relative precision
  (subnormals, absolute error ≤ 3e-8), and a value above 65504 is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch
from torch import Tensor

from oodlab.errors import DataError
from oodlab.scores._stream import mark_file_backed
from oodlab.types import Outputs

# 3: a folder of memory-mapped .npy arrays with SHA-256 records (2: one torch file per entry).
CACHE_FORMAT = 3
FeatureDtype = Literal["float32", "float16"]
FLOAT16_MAX = 65504.0
_MAPPED = ("logits", "features")
_SMALL = ("labels", "head_weight", "head_bias")


def entry_dir(cache_dir: Path, model_key: str, dataset_key: str) -> Path:
    """The folder of the cache entry of one (model, dataset) pair."""
    name = hashlib.sha256(dataset_key.encode()).hexdigest()[:24]
    return Path(cache_dir) / model_key / name


class _NpyStream:
    """One ``.npy`` file written row block by row block, hashed on the way."""

    def __init__(self, path: Path, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.shape = path, dtype, shape
        self.handle: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self.digest = hashlib.sha256()
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(
            _Tee(self.handle, self.digest), {**header, "shape": shape}
        )
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if data.shape[1:] != self.shape[1:]:
            raise DataError(
                f"{self.path.stem}: a batch of shape {data.shape} does not match the first "
                f"batch's row shape {self.shape[1:]}"
            )
        buffer = data.reshape(-1).view(np.uint8).data
        self.handle.write(buffer)
        self.digest.update(buffer)
        self.rows += len(data)

    def finish(self) -> dict[str, Any]:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if self.rows != self.shape[0]:
            raise DataError(
                f"the dataset yielded {self.rows} rows but has len() == {self.shape[0]}; "
                "make __len__ match the items it yields"
            )
        return {
            "dtype": str(self.dtype),
            "shape": list(self.shape),
            "sha256": self.digest.hexdigest(),
        }


class _Tee:
    """A write-only file object that also feeds a hash (for the ``.npy`` header)."""

    def __init__(self, handle: IO[bytes], digest: Any) -> None:
        self.handle, self.digest = handle, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)


class OutputsWriter:
    """Collects a forward pass batch by batch: into preallocated tensors, or into a cache entry.

    Args:
        rows: number of samples the pass will yield (``len(dataset)``).
        entry: the cache entry folder to create, or ``None`` to keep everything in memory.
        key: the full dataset key recorded in ``meta.json``.
        feature_dtype: on-disk dtype of ``features`` (see the module notes for float16).
    """

    def __init__(
        self, rows: int, entry: Path | None, key: str = "", feature_dtype: FeatureDtype = "float32"
    ) -> None:
        if feature_dtype not in ("float32", "float16"):
            raise DataError(f"feature_dtype must be 'float32' or 'float16', got {feature_dtype!r}")
        self.rows, self.entry, self.key, self.feature_dtype = rows, entry, key, feature_dtype
        self.tmp: Path | None = None
        self.streams: dict[str, _NpyStream] = {}
        self.memory: dict[str, Tensor] = {}
        self.filled = 0
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(
                tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent)
            )

    def append(self, arrays: dict[str, Tensor]) -> None:
        """One batch: ``logits``, ``features``, ``labels`` and ``extra.<name>`` tensors."""
        n = len(arrays["labels"])
        for name, value in arrays.items():
            dtype = self._dtype(name)
            if name == "features" and dtype == torch.float16 and len(value):
                peak = float(value.detach().abs().amax())
                if not peak <= FLOAT16_MAX:
                    raise DataError(
                        f"a feature of magnitude {peak:.3g} does not fit in float16 (max 65504); "
                        "use feature_dtype='float32'"
                    )
            value = value.detach().to("cpu", dtype)
            if self.tmp is None:
                if name not in self.memory:
                    self.memory[name] = torch.empty((self.rows, *value.shape[1:]), dtype=dtype)
                self.memory[name][self.filled : self.filled + n] = value
                continue
            if name not in self.streams:
                np_dtype = np.dtype(str(dtype).removeprefix("torch."))
                shape = (self.rows, *value.shape[1:])
                self.streams[name] = _NpyStream(self.tmp / f"{name}.npy", np_dtype, shape)
            self.streams[name].write(value.numpy())
        self.filled += n
        if self.filled > self.rows:
            raise DataError(
                f"the dataset yielded more than len() == {self.rows} rows; make __len__ match"
            )

    def _dtype(self, name: str) -> torch.dtype:
        if name == "labels":
            return torch.long
        return (
            torch.float16
            if name == "features" and self.feature_dtype == "float16"
            else torch.float32
        )

    def finish(self, head_weight: Tensor | None, head_bias: Tensor | None) -> Outputs:
        """The collected outputs; a cache entry is completed, renamed into place and mapped."""
        if self.tmp is None:
            if self.filled != self.rows:
                raise DataError(
                    f"the dataset yielded {self.filled} rows but has len() == {self.rows}"
                )
            extras = {k[6:]: v for k, v in self.memory.items() if k.startswith("extra.")}
            return Outputs(
                self.memory["logits"],
                self.memory["features"],
                self.memory["labels"],
                extras,
                head_weight,
                head_bias,
            )
        assert self.entry is not None  # set together with tmp
        try:
            records = {name: stream.finish() for name, stream in self.streams.items()}
            for name, value in (("head_weight", head_weight), ("head_bias", head_bias)):
                if value is not None:
                    stream = _NpyStream(
                        self.tmp / f"{name}.npy", np.dtype("float32"), tuple(value.shape)
                    )
                    stream.write(value.detach().float().cpu().numpy())
                    records[name] = stream.finish()
            meta = {"format": CACHE_FORMAT, "key": self.key, "arrays": records}
            (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            _publish(self.tmp, self.entry)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        loaded = load_entry(self.entry, self.key, verify=False)
        if loaded is None:
            raise DataError(f"cache entry {self.entry} could not be read back after writing it")
        return loaded

    def abort(self) -> None:
        for stream in self.streams.values():
            stream.handle.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _publish(tmp: Path, entry: Path) -> None:
    """Rename the finished folder into place; an entry another process published first wins."""
    if entry.exists() and not (entry / "meta.json").is_file():
        shutil.rmtree(entry, ignore_errors=True)  # a stale, incomplete folder of an old crash
    try:
        os.replace(tmp, entry)
    except OSError:
        if not (entry / "meta.json").is_file():
            raise
    fd = os.open(entry.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_entry(entry: Path, key: str, *, verify: bool = True) -> Outputs | None:
    """The outputs stored in ``entry``, or ``None`` if absent, stale, incomplete or corrupted.

    With ``verify`` every file's SHA-256 is checked against ``meta.json`` (read in 1 MiB
    blocks, through the page cache); any mismatch warns in one line and removes the entry.
    """
    meta_file = entry / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        records: dict[str, dict[str, Any]] = meta["arrays"]
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            shutil.rmtree(entry, ignore_errors=True)  # an older format: recomputed in its place
            return None
        for name, record in records.items():
            path = entry / f"{name}.npy"
            if not path.is_file():
                raise DataError(f"{path.name} is missing")
            if verify and _sha256(path) != record["sha256"]:
                raise DataError(f"{path.name} does not match its SHA-256 record")
        arrays = {name: _load_array(entry / f"{name}.npy", name, records[name]) for name in records}
        extras = {k[6:]: v for k, v in arrays.items() if k.startswith("extra.")}
        return Outputs(
            arrays["logits"],
            arrays["features"],
            arrays["labels"],
            extras,
            arrays.get("head_weight"),
            arrays.get("head_bias"),
        )
    except (DataError, OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"cache entry {entry} is corrupted ({exc}); recomputing it", stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def _load_array(path: Path, name: str, record: dict[str, Any]) -> Tensor:
    if name in _SMALL:
        array = np.load(path, allow_pickle=False)
    else:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    if list(array.shape) != record["shape"] or str(array.dtype) != record["dtype"]:
        raise DataError(f"{path.name} holds {array.dtype}{array.shape}, not its record")
    tensor = torch.from_numpy(array)
    return mark_file_backed(tensor) if name not in _SMALL else tensor


def _sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
