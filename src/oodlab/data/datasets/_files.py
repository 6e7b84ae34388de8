"""Shared helpers of the on-disk readers: lookup with helpful errors, checksums, decoding.

:class:`ImageFileDataset` is what every reader of image files (lists, folders, metadata
tables) returns: the paths and labels are read once, each image is decoded on access.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError
from oodlab.io import md5_file

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")

Transform = Callable[[Tensor], Any]


def dataset_missing(what: str, looked: Iterable[Path], layout: str, where: str) -> DatasetNotFoundError:
    """The one-line error for a dataset that is not on disk: where we looked, what we expected,
    and where the data can be obtained."""
    places = ", ".join(str(p) for p in looked)
    return DatasetNotFoundError(
        f"{what} not found (looked in {places}); expected {layout}. Get it: {where}"
    )


def find_dir(
    candidates: Sequence[Path], required: Sequence[str], what: str, layout: str, where: str
) -> Path:
    """The first folder of ``candidates`` that holds every path of ``required``."""
    for folder in candidates:
        if all((folder / name).exists() for name in required):
            return folder
    raise dataset_missing(what, candidates, layout, where)


def root_candidates(data_root: str | Path | None, *subdirs: str) -> list[Path]:
    """``data_root`` itself and its sub-folders ``subdirs`` (in this order)."""
    if data_root is None:
        raise DatasetNotFoundError(
            "no data root given; pass data_root (the folder holding the dataset) or --data-root"
        )
    root = Path(data_root).expanduser()
    return [root] + [root / sub for sub in subdirs]


def verify_md5(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path`` when its MD5 is not ``expected``."""
    digest = md5_file(path)
    if digest != expected:
        raise ChecksumError(
            f"{path}: MD5 is {digest}, expected {expected}; the file is damaged or not the "
            "published one, download it again"
        )


def decode_image(path: str | Path, mode: str = "RGB") -> Tensor:
    """The image at ``path`` as a ``uint8`` tensor ``(C, H, W)`` (``mode``: PIL mode, e.g.
    ``"RGB"`` or ``"L"``); an unreadable file raises one line naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"image {path} does not exist; check that the image folder matches the list or "
            "metadata file that names it"
        )
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert(mode))
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot decode image {path} ({reason}); the file is damaged or not an image: "
            "replace it or remove it from the list"
        ) from exc
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def list_images(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursive), sorted by path."""
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


class ImageFileDataset(Dataset[tuple[Any, int]]):
    """Images decoded from files on access, with integer labels (``-1`` for OOD).

    Without a transform an item is the decoded image scaled to ``float32`` in ``[0, 1]``
    (as :class:`~oodlab.data.TensorImageDataset`); with one, the transform receives the
    ``uint8`` tensor ``(C, H, W)``.

    Attributes:
        paths: absolute image paths, in list order.
        targets: ``(N,)`` long labels.
        extras: further per-image integer columns (e.g. ``place`` of Waterbirds, ``sc_label``
            of SC-OOD, the group columns of MOS lists), each ``(N,)``.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        transform: Transform | None = None,
        name: str = "images",
        mode: str = "RGB",
        extras: Mapping[str, Sequence[int] | np.ndarray] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.targets = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
        if len(self.targets) != len(self.paths):
            raise DataError(f"{len(self.paths)} image paths but {len(self.targets)} labels")
        self.extras = {k: np.asarray(v, dtype=np.int64) for k, v in (extras or {}).items()}
        for key, values in self.extras.items():
            if len(values) != len(self.paths):
                raise DataError(f"extra column {key!r} has {len(values)} rows, not {len(self)}")
        self.transform = transform
        self.name = name
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = decode_image(self.paths[index], self.mode)
        x = self.transform(image) if self.transform is not None else image.float() / 255
        return x, int(self.targets[index])

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageFileDataset:
        """The rows ``indices`` (in that order) as a new dataset with the same transform."""
        rows = np.asarray(indices, dtype=np.int64)
        return ImageFileDataset(
            [self.paths[i] for i in rows],
            self.targets.numpy()[rows],
            self.transform,
            name or self.name,
            self.mode,
            {k: v[rows] for k, v in self.extras.items()},
        )

    def with_labels(self, labels: Sequence[int] | np.ndarray) -> ImageFileDataset:
        """The same images with other labels (e.g. all ``-1`` for an OOD set)."""
        return ImageFileDataset(
            self.paths, labels, self.transform, self.name, self.mode, self.extras
        )

    def fingerprint(self) -> str:
        """Identity for the extraction cache: name, size, a hash of paths and labels, transform."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.targets.tolist()):
            digest.update(f"{path}\t{label}\n".encode())
        return f"{self.name}-n{len(self)}-{digest.hexdigest()[:16]}-{self.transform!r}"

    def __repr__(self) -> str:
        return f"ImageFileDataset(name={self.name!r}, n={len(self)})"
