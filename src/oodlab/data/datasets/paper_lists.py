"""The image lists of the papers, found in their released folder layouts: ImageNet-LT
(``ImageNet_LT_{train,val,test}.txt``), the SC-OOD benchmark of PASCL / ImOOD / PATT
(``benchmark_{cifar10,cifar100}/test_{name}.txt``), OpenOOD v1.5 (``benchmark_imglist/``) and
MOS's group-softmax lists (``path group_idx within_group_idx``).

The line formats are read by :mod:`oodlab.data.datasets.image_lists`; this module only knows
where the files live and says so when they are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from torch import Tensor

from oodlab.data.datasets._files import ImageTable, dataset_missing, find_dir, root_candidates
from oodlab.data.datasets.base import register_dataset
from oodlab.data.datasets.image_lists import ImageListDataset, read_image_list, read_sc_ood_list
from oodlab.errors import DataError

Transform = Callable[[Tensor], Tensor]

SCOOD_SETS = {
    "cifar10": ("texture", "svhn", "cifar100", "tin", "lsun", "places365"),
    "cifar100": ("texture", "svhn", "cifar10", "tin", "lsun", "places365"),
}
SCOOD_WHERE = (
    "the SC-OOD benchmark of Yang et al. ICCV 2021 (scood_benchmark.zip, linked from "
    "github.com/Jingkang50/ICCV21_SCOOD); unzip it so that data/imglist/ and data/images/ exist"
)
IMAGENET_LT_WHERE = (
    "the ImageNet-LT lists of Liu et al. CVPR 2019 (github.com/zhmiao/OpenLongTailRecognition-OLTR)"
    " beside the ImageNet-1k train/ and val/ folders (image-net.org)"
)
OPENOOD_WHERE = (
    "OpenOOD v1.5 (github.com/Jingkang50/OpenOOD, scripts/download/download.py) : "
    "benchmark_imglist/ and images_classic/ or images_largescale/"
)


@register_dataset("imagenet_lt", paper="Liu et al. CVPR 2019 (OLTR), arXiv:1904.05160")
def imagenet_lt(
    data_root: str | Path | None = None,
    split: Literal["train", "val", "test"] = "train",
    transform: Transform | None = None,
) -> ImageListDataset:
    """ImageNet-LT ``split`` (train 115,846; val 20,000; test 50,000): ``path label`` lines.

    Layout: ``ImageNet_LT_{split}.txt`` in ``data_root`` or ``data_root/ImageNet_LT``; the
    listed paths (``train/n01440764/….JPEG``) are relative to ``data_root``.
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be train, val or test, got {split!r}")
    list_name = f"ImageNet_LT_{split}.txt"
    folder = find_dir(
        root_candidates(data_root, "ImageNet_LT"),
        [list_name],
        "ImageNet-LT",
        f"{list_name} (lines 'train/<wnid>/<file>.JPEG <label>') and the ImageNet folders",
        IMAGENET_LT_WHERE,
    )
    image_root = root_candidates(data_root)[0]
    dataset = read_image_list(image_root, folder / list_name, transform=transform)
    dataset.name = f"imagenet_lt-{split}"
    return dataset


def _scood_root(data_root: str | Path | None, id_name: str, ood_name: str) -> Path:
    if id_name not in SCOOD_SETS:
        raise DataError(f"SC-OOD id_name must be 'cifar10' or 'cifar100', got {id_name!r}")
    if ood_name not in SCOOD_SETS[id_name]:
        raise DataError(
            f"SC-OOD has no set {ood_name!r} for {id_name}; valid: {', '.join(SCOOD_SETS[id_name])}"
        )
    list_path = f"imglist/benchmark_{id_name}/test_{ood_name}.txt"
    return find_dir(
        root_candidates(data_root, "data", "SCOOD/data", "scood/data"),
        [list_path, "images"],
        f"SC-OOD {ood_name} (for {id_name})",
        f"{list_path} and images/",
        SCOOD_WHERE,
    )


@register_dataset("scood", paper="Yang et al. ICCV 2021 (SC-OOD), used by PASCL, ImOOD, PATT")
def scood(
    data_root: str | Path | None = None,
    id_name: Literal["cifar10", "cifar100"] = "cifar10",
    ood_name: str = "texture",
    transform: Transform | None = None,
) -> tuple[ImageListDataset, ImageListDataset]:
    """One SC-OOD test set split into ``(true OOD, fake OOD)``.

    Lines are ``path {"sc_label": k, ...}``; images with ``sc_label ≥ 0`` belong semantically to
    ID class ``k`` ("fake OOD") and count as ID when the set is evaluated, as in PASCL's code.
    Layout: ``[data/]imglist/benchmark_<id>/test_<name>.txt`` and ``[data/]images/`` under
    ``data_root`` (or ``data_root/SCOOD/data``).
    """
    base = _scood_root(data_root, id_name, ood_name)
    true_ood, fake_ood = read_sc_ood_list(
        base / "images",
        base / f"imglist/benchmark_{id_name}/test_{ood_name}.txt",
        transform=transform,
    )
    true_ood.name = f"scood-{id_name}-{ood_name}"
    fake_ood.name = f"scood-{id_name}-{ood_name}-fake"
    return true_ood, fake_ood


@register_dataset("openood", paper="Zhang et al. 2023 (OpenOOD v1.5), arXiv:2306.09301")
def openood(
    data_root: str | Path | None = None,
    benchmark: str = "cifar10",
    list_name: str = "test_cifar10",
    transform: Transform | None = None,
    ood: bool | None = None,
) -> ImageListDataset:
    """An OpenOOD v1.5 image list, ``benchmark_imglist/<benchmark>/<list_name>.txt``.

    Paths are relative to ``images_classic/`` (CIFAR benchmarks) or ``images_largescale/``
    (ImageNet benchmarks), whichever holds the first listed image. ``ood=True`` relabels
    every image ``-1``; by default every list not named ``<split>_<benchmark>`` (the ID lists,
    e.g. ``test_cifar10``) is an OOD or outlier list and is relabelled.
    """
    relative = f"benchmark_imglist/{benchmark}/{list_name}.txt"
    root = find_dir(
        root_candidates(data_root, "openood", "data"),
        [relative],
        f"OpenOOD list {benchmark}/{list_name}",
        relative,
        OPENOOD_WHERE,
    )
    list_file = root / relative
    probe = read_image_list(root, list_file)
    image_root = next(
        (
            root / sub
            for sub in ("images_classic", "images_largescale", ".")
            if probe.paths and (root / sub / probe.paths[0]).is_file()
        ),
        root / ("images_largescale" if "imagenet" in benchmark else "images_classic"),
    )
    dataset = read_image_list(image_root, list_file, transform=transform)
    dataset.name = f"openood-{benchmark}-{list_name}"
    if ood if ood is not None else not list_name.endswith(f"_{benchmark}"):
        dataset.targets = dataset.targets.new_full(dataset.targets.shape, -1)
    return dataset


@register_dataset("mos_groups", paper="Huang & Li, CVPR 2021 (MOS), arXiv:2105.01879")
def mos_groups(
    list_file: str | Path,
    image_root: str | Path,
    transform: Transform | None = None,
) -> ImageTable:
    """A MOS group-softmax list: lines ``relative/path group_idx within_group_idx``.

    The label is the group index; ``extras["group"]`` and ``extras["within_group"]`` keep both
    columns as written (``imagenet2012_group_softmax_{train,val}_list.txt`` of
    github.com/deeplearning-wisc/large_scale_ood). Paths are relative to ``image_root``.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise dataset_missing(
            "MOS group list", [list_file], "lines 'relative/path group_idx within_group_idx'",
            "github.com/deeplearning-wisc/large_scale_ood (data_lists/)",
        )  # fmt: skip
    paths, groups, within = [], [], []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=2)
        if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts[1:]):
            raise DataError(
                f"{list_file}:{number}: expected 'path group_idx within_group_idx', got {line!r}"
            )
        paths.append(parts[0])
        groups.append(int(parts[1]))
        within.append(int(parts[2]))
    return ImageTable(
        image_root,
        paths,
        groups,
        transform,
        name=f"mos-{list_file.stem}",
        extras={"group": groups, "within_group": within},
    )
