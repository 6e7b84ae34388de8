"""Image folders: the ImageFolder-style OOD test sets (Textures, Places, SUN, iNaturalist) and the
ImageNet-10K subsets of PASCL's ImageNet-LT benchmark (one folder per WordNet id).

Every listing is sorted; all images are labelled ``-1`` (OOD / auxiliary outliers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from oodlab.data.datasets._files import dataset_missing, root_candidates
from oodlab.data.datasets.base import register_dataset
from oodlab.data.datasets.image_lists import IMAGE_SUFFIXES, ImageListDataset, read_image_folder
from oodlab.errors import DataError

Transform = Callable[[Tensor], Tensor]

MOS_WHERE = (
    "the curated OOD sets of MOS (Huang & Li, CVPR 2021; github.com/deeplearning-wisc/"
    "large_scale_ood: iNaturalist, SUN, Places download links)"
)
DTD_WHERE = "DTD (Cimpoi et al. 2014): www.robots.ox.ac.uk/~vgg/data/dtd/ (dtd-r1.0.1.tar.gz)"
IMAGENET10K_WHERE = (
    "ImageNet-10K (fall 2010 release, one folder or tar per wnid) from image-net.org; the wnid "
    "lists imagenet_extra_1k_wnid_list.txt and imagenet_ood_test_1k_wnid_list.txt are in "
    "PASCL's repository (github.com/amazon-science/long-tailed-ood-detection, datasets/)"
)


def _named_folder(
    data_root: str | Path | None,
    subdirs: tuple[str, ...],
    what: str,
    where: str,
    transform: Transform | None,
    name: str,
) -> ImageListDataset:
    candidates = root_candidates(data_root, *subdirs)[1:]
    for folder in candidates:
        if folder.is_dir():
            dataset = read_image_folder(folder, transform=transform)
            dataset.name = name
            return dataset
    raise dataset_missing(what, candidates, "a folder of image files (sub-folders allowed)", where)


@register_dataset("textures", paper="Cimpoi et al. CVPR 2014 (DTD), 5,640 images")
def textures(
    data_root: str | Path | None = None, transform: Transform | None = None
) -> ImageListDataset:
    """DTD, every image under ``dtd/images/<class>/`` (or ``textures/``, ``Textures/``)."""
    return _named_folder(
        data_root, ("dtd/images", "textures", "Textures"), "Textures (DTD)", DTD_WHERE, transform,
        "textures",
    )  # fmt: skip


@register_dataset("places", paper="Zhou et al. 2017; MOS subset (Huang & Li, CVPR 2021)")
def places(
    data_root: str | Path | None = None, transform: Transform | None = None
) -> ImageListDataset:
    """MOS's Places subset: every image under ``Places/`` (or ``places/``)."""
    return _named_folder(data_root, ("Places", "places"), "Places", MOS_WHERE, transform, "places")


@register_dataset("sun", paper="Xiao et al. 2010; MOS subset (Huang & Li, CVPR 2021)")
def sun(
    data_root: str | Path | None = None, transform: Transform | None = None
) -> ImageListDataset:
    """MOS's SUN subset: every image under ``SUN/`` (or ``sun/``)."""
    return _named_folder(data_root, ("SUN", "sun"), "SUN", MOS_WHERE, transform, "sun")


@register_dataset("inaturalist", paper="Van Horn et al. 2018; MOS subset (Huang & Li, CVPR 2021)")
def inaturalist(
    data_root: str | Path | None = None, transform: Transform | None = None
) -> ImageListDataset:
    """MOS's iNaturalist subset: every image under ``iNaturalist/`` (or ``inaturalist/``)."""
    return _named_folder(
        data_root, ("iNaturalist", "inaturalist"), "iNaturalist", MOS_WHERE, transform,
        "inaturalist",
    )  # fmt: skip


def read_wnids(path: Path) -> list[str]:
    """WordNet ids, one per line (``n`` + 8 digits), in file order."""
    if not path.is_file():
        raise dataset_missing("wnid list", [path], "one WordNet id (n01234567) per line",
                              IMAGENET10K_WHERE)  # fmt: skip
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    bad = [w for w in wnids if not re.fullmatch(r"n\d{8}", w)]
    if bad:
        raise DataError(f"{path}: {bad[0]!r} is not a WordNet id like n01234567")
    return wnids


def wnid_subset(
    folder: Path,
    wnids: list[str],
    per_class: int | None,
    transform: Transform | None,
    name: str,
) -> ImageListDataset:
    """Images of the class folders ``folder/<wnid>/``: in wnid order, files sorted by name,
    the first ``per_class`` of each (all if ``None``), labelled ``-1``."""
    missing = [w for w in wnids if not (folder / w).is_dir()]
    if missing:
        raise dataset_missing(
            f"{len(missing)} of {len(wnids)} ImageNet-10K class folders (first {missing[0]})",
            [folder],
            "one folder per wnid holding its .JPEG files (untar each <wnid>.tar into <wnid>/)",
            IMAGENET10K_WHERE,
        )
    paths: list[str] = []
    for wnid in wnids:
        files = sorted(
            p.name for p in (folder / wnid).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        paths += [f"{wnid}/{f}" for f in files[:per_class]]
    return ImageListDataset(folder, paths, [-1] * len(paths), transform=transform, name=name)


def _imagenet10k(data_root: str | Path | None) -> Path:
    candidates = root_candidates(data_root, "imagenet10k")[::-1]
    return next((c for c in candidates if c.is_dir()), candidates[0])


@register_dataset(
    "imagenet_extra", paper="PASCL (Wang et al. ICML 2022): ImageNet-Extra, 500 classes"
)
def imagenet_extra(
    data_root: str | Path | None = None,
    wnid_list: str | Path | None = None,
    transform: Transform | None = None,
) -> ImageListDataset:
    """ImageNet-Extra, PASCL's auxiliary outliers for ImageNet-LT: every image of the 500
    ImageNet-10K classes of ``imagenet_extra_1k_wnid_list.txt`` (517,711 images).

    Layout: ``<data_root>/imagenet10k/<wnid>/*.JPEG`` (or the wnid folders in ``data_root``);
    the wnid list in ``data_root`` unless ``wnid_list`` names it.
    """
    root = root_candidates(data_root)[0]
    wnids = read_wnids(Path(wnid_list) if wnid_list else root / "imagenet_extra_1k_wnid_list.txt")
    return wnid_subset(_imagenet10k(data_root), wnids, None, transform, "imagenet_extra")


@register_dataset(
    "imagenet_ood_test", paper="PASCL (Wang et al. ICML 2022): ImageNet-1k-OOD, 1000 × 50 images"
)
def imagenet_ood_test(
    data_root: str | Path | None = None,
    wnid_list: str | Path | None = None,
    per_class: int = 50,
    transform: Transform | None = None,
) -> ImageListDataset:
    """ImageNet-1k-OOD, PASCL's OOD test set for ImageNet-LT: the first ``per_class`` = 50 files
    (sorted names) of each of the 1000 classes of ``imagenet_ood_test_1k_wnid_list.txt``.

    Layout as :func:`imagenet_extra`; PASCL's pre-built ``imagenet_ood_test_1k/<wnid>/`` folder is
    used when present.
    """
    root = root_candidates(data_root)[0]
    wnids = read_wnids(
        Path(wnid_list) if wnid_list else root / "imagenet_ood_test_1k_wnid_list.txt"
    )
    prebuilt = root / "imagenet_ood_test_1k"
    folder = prebuilt if prebuilt.is_dir() else _imagenet10k(data_root)
    return wnid_subset(folder, wnids, per_class, transform, f"imagenet_ood_test-{per_class}")
