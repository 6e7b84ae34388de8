"""ImageNet-1k in the torchvision ImageFolder layout, ``train/<wnid>/*.JPEG`` and
``val/<wnid>/*.JPEG``, and NPOS's ImageNet-100 class subset of it.

Class ``i`` is the ``i``-th wnid folder in sorted order (torchvision's ``find_classes``), so a
subset given by indices into that list (NPOS's ImageNet-100, spec Appendix A) needs all 1000
class folders present. Files in each class folder are sorted by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from torch import Tensor

from oodlab.data.datasets._files import dataset_missing, root_candidates
from oodlab.data.datasets.base import register_dataset
from oodlab.data.datasets.image_lists import IMAGE_SUFFIXES, ImageListDataset
from oodlab.errors import DataError

IMAGENET_WHERE = (
    "ImageNet-1k (ILSVRC 2012, image-net.org): untar the training archives into train/<wnid>/ and "
    "sort the 50,000 validation images into val/<wnid>/ (torchvision.datasets.ImageNet does both)"
)

# NPOS's ImageNet-100 (Tao et al. ICLR 2023; spec synthesis_and_mos.md Appendix A): indices into
# the sorted list of the 1000 ImageNet-1k wnid folders; position = label 0..99.
NPOS_IMAGENET100 = (
    125, 788, 630, 535, 474, 694, 146, 914, 447, 208, 182, 621, 271, 646, 328, 119, 772, 928, 610,
    891, 340, 890, 589, 524, 172, 453, 869, 556, 168, 982, 942, 874, 787, 320, 457, 127, 814, 358,
    604, 634, 898, 388, 618, 306, 150, 508, 702, 323, 822, 63, 445, 927, 266, 298, 255, 44, 207,
    151, 666, 868, 992, 843, 436, 131, 384, 908, 278, 169, 294, 428, 60, 472, 778, 304, 76, 289,
    199, 152, 584, 510, 825, 236, 395, 762, 917, 573, 949, 696, 977, 401, 583, 10, 562, 738, 416,
    637, 973, 359, 52, 708,
)  # fmt: skip


def _split_folder(data_root: str | Path | None, split: str) -> Path:
    candidates = root_candidates(data_root, "imagenet", "ILSVRC2012", "imagenet1k")
    for folder in candidates:
        if (folder / split).is_dir():
            return folder / split
    raise dataset_missing(
        f"ImageNet-1k {split}/",
        candidates,
        f"{split}/<wnid>/*.JPEG with the 1000 class folders (n01440764 ... n15075141)",
        IMAGENET_WHERE,
    )


def _images(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(
            e.name for e in entries if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        )


@register_dataset("imagenet_folder", paper="Deng et al. CVPR 2009 (ImageNet-1k), ImageFolder tree")
def imagenet_folder(
    data_root: str | Path | None = None,
    split: Literal["train", "val"] = "val",
    classes: Sequence[int] | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> ImageListDataset:
    """ImageNet-1k ``split`` from ``<root>/{train,val}/<wnid>/`` (``root`` = ``data_root`` or its
    ``imagenet/``, ``ILSVRC2012/`` or ``imagenet1k/`` sub-folder).

    ``classes``: indices into the 1000 sorted wnids; the image's label is the position of its
    class in ``classes`` (``None``: all 1000, label = sorted-wnid index). Every class folder
    must exist (they fix the index); only the chosen ones are listed.
    """
    if split not in ("train", "val"):
        raise DataError(f"split must be 'train' or 'val', got {split!r}")
    folder = _split_folder(data_root, split)
    with os.scandir(folder) as entries:
        wnids = sorted(e.name for e in entries if e.is_dir())
    if len(wnids) != 1000:
        raise dataset_missing(
            f"ImageNet-1k {split}/ with 1000 class folders (found {len(wnids)})",
            [folder],
            f"{split}/<wnid>/*.JPEG for every one of the 1000 classes (they fix the class index)",
            IMAGENET_WHERE,
        )
    chosen = list(range(1000)) if classes is None else [int(c) for c in classes]
    if len(set(chosen)) != len(chosen) or not all(0 <= c < 1000 for c in chosen):
        raise DataError(f"classes must be distinct indices in [0, 1000), got {chosen[:5]}...")
    paths: list[str] = []
    labels: list[int] = []
    for label, index in enumerate(chosen):
        files = _images(folder / wnids[index])
        if not files:
            raise DataError(f"{folder / wnids[index]} holds no image files (class {index})")
        paths += [f"{wnids[index]}/{f}" for f in files]
        labels += [label] * len(files)
    name = f"imagenet-{split}" if classes is None else f"imagenet{len(chosen)}-{split}"
    return ImageListDataset(folder, paths, labels, transform=transform, name=name)
