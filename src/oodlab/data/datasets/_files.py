"""Shared helpers of the on-disk readers: lookup with one-line errors, checksums, tables.

:class:`ImageTable` is an :class:`~oodlab.data.datasets.image_lists.ImageListDataset` with
further integer columns per image (the environment of Waterbirds and CelebA, the group
columns of MOS lists), for the readers of metadata files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from oodlab.data.datasets.image_lists import ImageListDataset
from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError
from oodlab.io import md5_file


def dataset_missing(
    what: str, looked: Iterable[Path], layout: str, where: str
) -> DatasetNotFoundError:
    """The one-line error for a dataset that is not on disk: where we looked, what we expected,
    and where the data can be obtained."""
    places = ", ".join(str(p) for p in looked)
    return DatasetNotFoundError(
        f"{what} not found (looked in {places}); expected {layout}. Get it: {where}"
    )


def root_candidates(data_root: str | Path | None, *subdirs: str) -> list[Path]:
    """``data_root`` itself, then its sub-folders ``subdirs`` (in this order)."""
    if data_root is None:
        raise DatasetNotFoundError(
            "no data root given; pass data_root (the folder holding the dataset) or --data-root"
        )
    root = Path(data_root).expanduser()
    return [root] + [root / sub for sub in subdirs]


def find_dir(
    candidates: Sequence[Path], required: Sequence[str], what: str, layout: str, where: str
) -> Path:
    """The first folder of ``candidates`` that holds every path of ``required``."""
    for folder in candidates:
        if all((folder / name).exists() for name in required):
            return folder
    raise dataset_missing(what, candidates, layout, where)


def verify_md5(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path`` when its MD5 is not ``expected``."""
    digest = md5_file(path)
    if digest != expected:
        raise ChecksumError(
            f"{path}: MD5 is {digest}, expected {expected}; the file is damaged or not the "
            "published one, obtain it again"
        )


def seeded_class_split(num_classes: int, num_id: int, seed: int) -> list[int]:
    """``num_id`` of ``range(num_classes)`` drawn with ``seed``, sorted (a default ID/OOD split)."""
    if not 0 < num_id < num_classes:
        raise DataError(f"need 0 < num_id < {num_classes} ID classes, got {num_id}")
    chosen = np.random.default_rng(seed).permutation(num_classes)[:num_id]
    return sorted(int(c) for c in chosen)


def check_id_classes(id_classes: Sequence[int], num_classes: int, what: str) -> list[int]:
    """``id_classes`` sorted, after checking they are distinct indices in ``[0, num_classes)``."""
    chosen = sorted(int(c) for c in id_classes)
    if len(set(chosen)) != len(chosen) or not chosen or chosen[0] < 0:
        raise DataError(f"{what}: id_classes must be distinct class indices >= 0, got {chosen}")
    if chosen[-1] >= num_classes or len(chosen) == num_classes:
        raise DataError(
            f"{what}: id_classes must be a proper subset of 0..{num_classes - 1}, got {chosen}"
        )
    return chosen


class ImageTable(ImageListDataset):
    """Listed images with their label and further integer columns ``extras`` (each ``(N,)``)."""

    def __init__(
        self,
        root: str | Path,
        paths: Sequence[str],
        labels: Sequence[int],
        transform: Callable[[Tensor], Tensor] | None = None,
        name: str = "image-table",
        extras: Mapping[str, Sequence[int] | np.ndarray] | None = None,
    ) -> None:
        super().__init__(root, paths, labels, transform=transform, name=name)
        self.extras = {k: np.asarray(v, dtype=np.int64) for k, v in (extras or {}).items()}
        for key, values in self.extras.items():
            if len(values) != len(self.paths):
                raise DataError(f"column {key!r} has {len(values)} rows for {len(self)} images")
