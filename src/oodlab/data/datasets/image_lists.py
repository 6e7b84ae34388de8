"""Image files listed in text files: SC-OOD lists, ImageNet-LT lists, OpenOOD lists, folders.

* ImageNet-LT / OpenOOD lists: one ``relative/path label`` per line;
* SC-OOD lists: ``relative/path {"sc_label": k, ...}`` per line; images with ``sc_label ≥ 0``
  are semantically ID ("fake OOD") and are moved to the ID side, as PASCL / ImOOD / PATT do;
* ImageFolder-style OOD sets (Textures, Places, SUN, iNaturalist): every image file under a
  folder, sorted, labelled ``-1``.

Images are decoded with PIL when read; one that fails to decode raises an error naming it.
A listed path must stay inside the root: ``..`` that climbs out of it is refused, and so is an
absolute path unless ``allow_absolute=True`` (or ``OODLAB_ALLOW_ABSOLUTE_PATHS=1``) says the
list may point anywhere.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.data.datasets.base import register_dataset
from oodlab.errors import DataError, DatasetNotFoundError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ALLOW_ABSOLUTE_ENV = "OODLAB_ALLOW_ABSOLUTE_PATHS"


def check_listed_paths(paths: Sequence[str], root: Path, name: str, allow_absolute: bool) -> None:
    """One line for the first listed path that leaves ``root`` (``..``) or, unless allowed,
    is absolute. Lexical, so it costs no file-system call per image."""
    allow_absolute = allow_absolute or os.environ.get(ALLOW_ABSOLUTE_ENV, "") not in ("", "0")
    for number, path in enumerate(paths, 1):
        text = path.replace("\\", "/")
        if posixpath.isabs(text) or (len(text) > 1 and text[1] == ":"):
            if allow_absolute:
                continue
            raise DataError(
                f"{name}: entry {number} is an absolute path ({path}); image lists hold paths "
                f"relative to the data root {root} (set {ALLOW_ABSOLUTE_ENV}=1 to allow absolute "
                "ones)"
            )
        normal = posixpath.normpath(text)
        if normal == ".." or normal.startswith("../"):
            raise DataError(
                f"{name}: entry {number} ({path}) points outside the data root {root}; listed "
                "paths must stay inside it"
            )


def load_image(path: Path) -> Tensor:
    """An RGB image as a uint8 tensor ``(3, H, W)``; a file that fails to decode names itself."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class ImageListDataset(Dataset[tuple[Tensor, int]]):
    """Images under ``root`` at the listed relative paths, with their labels."""

    def __init__(
        self,
        root: str | Path,
        paths: Sequence[str],
        labels: Sequence[int],
        transform: Callable[[Tensor], Tensor] | None = None,
        name: str = "image-list",
        allow_absolute: bool = False,
    ) -> None:
        self.root = Path(root)
        self.paths = list(paths)
        check_listed_paths(self.paths, self.root, name, allow_absolute)
        self.targets = torch.as_tensor(list(labels), dtype=torch.long)
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = load_image(self.root / self.paths[index])
        x = self.transform(image) if self.transform is not None else image.float() / 255
        return x, int(self.targets[index])

    def fingerprint(self) -> str:
        import hashlib
        import os

        # Every file's path, size and modification time (nanoseconds): an edited, replaced or
        # re-encoded image changes the key without reading every pixel.
        digest = hashlib.sha256()
        for path in self.paths:
            try:
                stat = os.stat(self.root / path)
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}|missing\n".encode())
        digest.update(self.targets.numpy().tobytes())
        return f"{self.name}-{self.root}-n{len(self)}-{digest.hexdigest()[:16]}-{self.transform!r}"


def _lines(list_file: Path) -> list[str]:
    if not list_file.is_file():
        raise DatasetNotFoundError(f"image list {list_file} not found")
    return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]


@register_dataset("image_list", paper="ImageNet-LT (Liu et al. 2019) and OpenOOD image lists")
def read_image_list(root: str | Path, list_file: str | Path, **kwargs: Any) -> ImageListDataset:
    """Lines ``relative/path label`` (ImageNet-LT train/val/test, OpenOOD lists)."""
    paths, labels = [], []
    for number, line in enumerate(_lines(Path(list_file)), 1):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{list_file}:{number}: expected 'relative/path label', got {line!r}")
        paths.append(parts[0])
        labels.append(int(parts[1]))
    return ImageListDataset(root, paths, labels, name=f"list-{Path(list_file).name}", **kwargs)


def read_sc_ood_list(
    root: str | Path, list_file: str | Path, **kwargs: Any
) -> tuple[ImageListDataset, ImageListDataset]:
    """An SC-OOD test list split into (true OOD, fake OOD with their ID class labels)."""
    true_paths, fake_paths, fake_labels = [], [], []
    for number, line in enumerate(_lines(Path(list_file)), 1):
        path, _, extra = line.partition(" ")
        try:
            sc_label = int(json.loads(extra)["sc_label"])
        except (ValueError, KeyError, TypeError):
            raise DataError(
                f"{list_file}:{number}: expected 'path {{\"sc_label\": k}}', got {line!r}"
            ) from None
        if sc_label >= 0:
            fake_paths.append(path)
            fake_labels.append(sc_label)
        else:
            true_paths.append(path)
    name = Path(list_file).stem
    return (
        ImageListDataset(root, true_paths, [-1] * len(true_paths), name=f"scood-{name}", **kwargs),
        ImageListDataset(root, fake_paths, fake_labels, name=f"scood-{name}-fake", **kwargs),
    )


@register_dataset(
    "image_folder", paper="ImageFolder-style OOD sets (Textures, Places, SUN, iNaturalist)"
)
def read_image_folder(root: str | Path, **kwargs: Any) -> ImageListDataset:
    """Every image file under ``root`` (recursively, sorted), labelled -1."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} not found; expected image files under it")
    paths = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise DatasetNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return ImageListDataset(root, paths, [-1] * len(paths), name=f"folder-{root.name}", **kwargs)
