"""Fashion-MNIST in its IDX format (``*-idx3-ubyte.gz`` images, ``*-idx1-ubyte.gz`` labels)."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from oodlab.data.datasets.base import TensorImageDataset, register_dataset
from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# SHA-256 of the decompressed payloads (independent of the gzip level, so the upstream
# files and Debian's recompressed ones both match); computed from Debian's
# dataset-fashion-mnist 0.0~git20200523.55506a9-1.
SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
WHERE = (
    "Fashion-MNIST (zalandoresearch/fashion-mnist): `apt-get install dataset-fashion-mnist` "
    f"puts it in {DEBIAN_DIR}, or torchvision.datasets.FashionMNIST(root, download=True)"
)


def read_idx(path: str | Path, checksums: dict[str, str] | None = SHA256) -> np.ndarray:
    """Array stored in an IDX file (``.gz`` or plain); checked against ``checksums`` by name.

    The format: a 4-byte magic (two zero bytes, a type code — ``0x08`` = uint8 — and the
    number of dimensions), one big-endian int32 per dimension, then the data.
    """
    path = Path(path)
    raw = _decompress(path) if path.suffix == ".gz" else path.read_bytes()
    if checksums is not None and path.name in checksums:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != checksums[path.name]:
            raise ChecksumError(
                f"{path}: SHA-256 of the content is {digest}, expected "
                f"{checksums[path.name]}; the file is damaged, obtain it again"
            )
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of uint8 values (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {data.size} values, its header announces shape {shape}")
    return data.reshape(shape)


MAX_IDX_BYTES = 64 << 20  # the largest file (train images) is 47,040,016 bytes decompressed


def _decompress(path: Path, limit: int = MAX_IDX_BYTES) -> bytes:
    """The gzip payload of ``path``, read in chunks and stopped past ``limit`` bytes; a file
    that is not gzip, is truncated or expands without end raises one line before anything
    is parsed (the checksum of the payload is checked right after)."""
    out = bytearray()
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                out += block
                if len(out) > limit:
                    raise DataError(
                        f"{path} expands past {limit >> 20} MiB: not a Fashion-MNIST IDX file"
                    )
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, DataError):
            raise
        raise ChecksumError(
            f"{path} is not a complete gzip file ({exc}); the file is damaged, obtain it again"
        ) from None
    return bytes(out)


def find_fashion_mnist(data_root: str | Path | None) -> Path:
    """The folder holding the four Fashion-MNIST files: with ``data_root``, that folder or its
    ``fashion-mnist/`` or ``FashionMNIST/raw/`` sub-folder, and nowhere else (a given root is
    used or refused, never replaced by the system copy); without one, Debian's location."""
    candidates = []
    if data_root is not None:
        candidates += [
            Path(data_root),
            Path(data_root) / "fashion-mnist",
            Path(data_root) / "FashionMNIST" / "raw",
        ]
    else:
        candidates.append(DEBIAN_DIR)
    names = [name for pair in FILES.values() for name in pair]
    for folder in candidates:
        if all((folder / name).is_file() for name in names):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found (looked in {looked}; expected {', '.join(names)}). "
        f"Get it: {WHERE}"
    )


@lru_cache(maxsize=4)  # decoding 60,000 images takes a second: once per process is enough
def _load(
    folder: Path, split: str, checksums: tuple[tuple[str, str], ...] | None
) -> TensorImageDataset:
    images_name, labels_name = FILES[split]
    table = dict(checksums) if checksums is not None else None
    images = read_idx(folder / images_name, table)
    labels = read_idx(folder / labels_name, table)
    if images.ndim != 3 or labels.shape != (len(images),):
        raise DataError(f"{folder}: {images.shape} images do not match {labels.shape} labels")
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return TensorImageDataset(tensor, labels.astype(np.int64), name=f"fashion_mnist-{split}")


@register_dataset("fashion_mnist", paper="Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747")
def fashion_mnist(
    data_root: str | Path | None = None,
    split: str = "train",
    checksums: dict[str, str] | None = SHA256,
) -> TensorImageDataset:
    """Fashion-MNIST ``split`` (``"train"``: 60,000, ``"test"``: 10,000) as 1×28×28 uint8."""
    if split not in FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    folder = find_fashion_mnist(data_root)
    table = tuple(sorted(checksums.items())) if checksums is not None else None
    return _load(folder.resolve(), split, table)
