"""CIFAR-10 / CIFAR-100 in the "python version" pickle batches, read only after their md5 matches.

Layout: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` and
``<root>/cifar-100-python/{train, test}``. The batches are Python pickles; oodlab checks each
file's md5 against the published value *before* reading it, and even then unpickles with a
restricted unpickler that only builds plain containers, numbers, strings and bytes (numpy
arrays are rebuilt from raw bytes), so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodlab.data.datasets.base import TensorImageDataset, register_dataset
from oodlab.data.longtail import LongTail, Profile, Rule, longtail_indices
from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError
from oodlab.io import md5_file

# md5 of each file, as published with the datasets (and listed by torchvision).
MD5 = {
    "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
    "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
    "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
    "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
    "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
}
FILES = {
    ("cifar10", "train"): [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
    ("cifar10", "test"): ["cifar-10-batches-py/test_batch"],
    ("cifar100", "train"): ["cifar-100-python/train"],
    ("cifar100", "test"): ["cifar-100-python/test"],
}
WHERE = "https://www.cs.toronto.edu/~kriz/cifar.html (the 'CIFAR-10/100 python version' archives)"


# The only globals a CIFAR batch needs: numpy's array reconstruction (numpy 1 and 2 names),
# and codecs.encode, with which Python 3 writes bytes into protocol-2 pickles.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds plain containers and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: CIFAR batches hold arrays only")
        if module.startswith("numpy.core") and not hasattr(np, "core"):
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def _read_batch(path: Path, md5: str | None) -> dict[str, Any]:
    actual = md5_file(path) if md5 is not None else None
    if actual != md5:
        raise ChecksumError(
            f"{path}: md5 {actual} does not match the published {md5}; obtain it again"
        )
    data = path.read_bytes()
    try:
        # Written by Python 2: encoding="bytes" keeps the keys (and array bytes) as bytes.
        return dict(_RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())
    except (pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"{path} is not a CIFAR pickle batch: {exc}") from None


def _field(batch: dict[Any, Any], *names: str) -> Any:
    for name in names:
        for key in (name, name.encode()):
            if key in batch:
                return batch[key]
    raise DataError(f"CIFAR batch lacks the field {names[0]!r}")


def read_cifar(
    root: str | Path, name: str, split: str, checksums: dict[str, str] | None = MD5
) -> TensorImageDataset:
    """Images ``(N, 3, 32, 32)`` uint8 and labels of CIFAR ``name`` (cifar10 | cifar100)."""
    if (name, split) not in FILES:
        raise DataError(
            f"unknown CIFAR set {name!r} / split {split!r}; use cifar10 or cifar100, train or test"
        )
    root = Path(root)
    files = FILES[(name, split)]
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name} {split} not found under {root} (missing {missing[0]}; expected "
            f"{', '.join(files)}). Get it from {WHERE} and extract it into {root}"
        )
    images, labels = [], []
    unlisted = [f for f in files if checksums is not None and f not in checksums]
    if unlisted:
        raise DataError(f"checksums name no MD5 for {unlisted[0]}; give one for every file")
    for relative in files:
        batch = _read_batch(root / relative, None if checksums is None else checksums[relative])
        images.append(np.asarray(_field(batch, "data"), dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(_field(batch, "labels", "fine_labels"), dtype=np.int64))
    return TensorImageDataset(
        torch.from_numpy(np.concatenate(images).copy()),
        np.concatenate(labels),
        name=f"{name}-{split}",
    )


@register_dataset(
    "cifar10", paper="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images"
)
def cifar10(
    data_root: str | Path, split: str = "train", checksums: dict[str, str] | None = MD5
) -> TensorImageDataset:
    return read_cifar(data_root, "cifar10", split, checksums)


@register_dataset(
    "cifar100", paper="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images"
)
def cifar100(
    data_root: str | Path, split: str = "train", checksums: dict[str, str] | None = MD5
) -> TensorImageDataset:
    return read_cifar(data_root, "cifar100", split, checksums)


class LongTailImages(TensorImageDataset):
    """A long-tailed subsample held in memory; ``longtail`` has the kept indices (into the full
    training split, to save with the run), the class counts, the prior and the shot groups."""

    def __init__(self, full: TensorImageDataset, longtail: LongTail, name: str) -> None:
        rows = torch.from_numpy(longtail.indices)
        super().__init__(full.images[rows], full.targets[rows], full.transform, name)
        self.longtail = longtail


def cifar_lt(
    data_root: str | Path,
    name: str = "cifar10",
    imbalance_ratio: float = 0.01,
    profile: Profile = "exp",
    rule: Rule = "first",
    seed: int = 0,
    n_max: int | None = None,
    checksums: dict[str, str] | None = MD5,
) -> LongTailImages:
    """CIFAR-10-LT / CIFAR-100-LT: class ``c`` keeps ``int(n_max · ρ^(c/(C−1)))`` images.

    With the defaults (ρ = 0.01, ``n_max`` = the class size, the first ``n_c`` images of each
    class in file order) this is the set of PASCL, ImOOD and PATT (long_tailed.md §1.3):
    12,406 images for CIFAR-10-LT, 10,847 for CIFAR-100-LT.
    """
    full = read_cifar(data_root, name, "train", checksums)
    lt = longtail_indices(full.targets.numpy(), imbalance_ratio, profile, n_max, rule, seed)
    tag = f"{name}_lt-rho{imbalance_ratio}-{profile}-{rule}" + (
        f"-seed{seed}" if rule == "random" else ""
    )
    return LongTailImages(full, lt, tag)


@register_dataset("cifar10_lt", paper="Cao et al. NeurIPS 2019 (LDAM), arXiv:1906.07413")
def cifar10_lt(
    data_root: str | Path,
    imbalance_ratio: float = 0.01,
    profile: Profile = "exp",
    rule: Rule = "first",
    seed: int = 0,
    checksums: dict[str, str] | None = MD5,
) -> LongTailImages:
    """CIFAR-10-LT: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50] images at ρ = 0.01."""
    return cifar_lt(data_root, "cifar10", imbalance_ratio, profile, rule, seed, None, checksums)


@register_dataset("cifar100_lt", paper="Cao et al. NeurIPS 2019 (LDAM), arXiv:1906.07413")
def cifar100_lt(
    data_root: str | Path,
    imbalance_ratio: float = 0.01,
    profile: Profile = "exp",
    rule: Rule = "first",
    seed: int = 0,
    checksums: dict[str, str] | None = MD5,
) -> LongTailImages:
    """CIFAR-100-LT: 500 … 5 images per class, 10,847 in all at ρ = 0.01."""
    return cifar_lt(data_root, "cifar100", imbalance_ratio, profile, rule, seed, None, checksums)
