"""Spurious-correlation sets from their metadata files: Waterbirds (``metadata.csv``) and CelebA
(``list_attr_celeba.txt`` + ``list_eval_partition.txt``), as used by ASCOOD's spurious setting
(after Ming, Yin & Li, "On the Impact of Spurious Correlation for Out-of-distribution
Detection", AAAI 2022, arXiv:2109.05642).

Each item is ``(image, label)``; the environment (the spurious attribute) and the group
``2·label + environment`` are in ``dataset.extras["environment"]`` and ``["group"]``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from torch import Tensor

from oodlab.data.datasets._files import ImageTable, find_dir, root_candidates
from oodlab.data.datasets.base import register_dataset
from oodlab.errors import DataError

Split = Literal["train", "val", "test", "all"]
_SPLIT_CODES = {"train": {0}, "val": {1}, "test": {2}, "all": {0, 1, 2}}

WATERBIRDS_WHERE = (
    "the Waterbirds release of Sagawa et al. 2020 (group DRO, 'waterbird_complete95_forest2water2'"
    ".tar.gz from github.com/kohpangwei/group_DRO), or generate it with Spurious_OOD's "
    "generate_waterbird.py"
)
CELEBA_WHERE = (
    "CelebA (Liu et al. 2015, mmlab.ie.cuhk.edu.hk/projects/CelebA.html): the aligned images "
    "img_align_celeba/ and the annotation files, or torchvision.datasets.CelebA(download=True)"
)


def _split_codes(split: str) -> set[int]:
    if split not in _SPLIT_CODES:
        raise DataError(f"split must be one of {sorted(_SPLIT_CODES)}, got {split!r}")
    return _SPLIT_CODES[split]


@register_dataset("waterbirds", paper="Sagawa et al. ICLR 2020, arXiv:1911.08731; ASCOOD §1.3")
def waterbirds(
    data_root: str | Path | None = None,
    split: Split = "train",
    transform: Callable[[Tensor], Tensor] | None = None,
) -> ImageTable:
    """Waterbirds ``split``: label ``y`` (1 = waterbird), environment ``place`` (1 = water).

    Layout: ``metadata.csv`` (columns ``img_id,img_filename,y,split,place,place_filename``;
    split 0/1/2 = train/val/test) beside the image sub-folders it names, in ``data_root`` or
    ``data_root/waterbird_complete95_forest2water2`` or ``data_root/waterbirds``. Rows keep the
    file order of ``metadata.csv``.
    """
    codes = _split_codes(split)
    folder = find_dir(
        root_candidates(data_root, "waterbird_complete95_forest2water2", "waterbirds"),
        ["metadata.csv"],
        "Waterbirds",
        "metadata.csv (img_id,img_filename,y,split,place,place_filename) and the image folders",
        WATERBIRDS_WHERE,
    )
    metadata = folder / "metadata.csv"
    paths, labels, places = [], [], []
    with open(metadata, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"img_filename", "y", "split", "place"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{metadata} lacks the columns {sorted(missing)}")
        for number, row in enumerate(reader, 2):
            try:
                y, code, place = int(row["y"]), int(row["split"]), int(row["place"])
            except ValueError:
                raise DataError(
                    f"{metadata}:{number}: y, split and place must be integers"
                ) from None
            if code in codes:
                paths.append(row["img_filename"])
                labels.append(y)
                places.append(place)
    return ImageTable(
        folder,
        paths,
        labels,
        transform,
        name=f"waterbirds-{split}",
        extras={"environment": places, "group": [2 * y + p for y, p in zip(labels, places)]},
    )


def _read_attributes(path: Path) -> tuple[list[str], list[str], list[list[int]]]:
    """(attribute names, file names, ±1 rows) of ``list_attr_celeba.txt``."""
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: expected a count line, a names line, then one row per image")
    names = lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"{path}:{number}: {len(parts) - 1} values for {len(names)} attributes")
        files.append(parts[0])
        rows.append([int(v) for v in parts[1:]])
    if len(files) != int(lines[0]):
        raise DataError(f"{path} announces {lines[0].strip()} images but lists {len(files)}")
    return names, files, rows


@register_dataset("celeba", paper="Liu et al. ICCV 2015; Ming et al. AAAI 2022 (spurious OOD)")
def celeba(
    data_root: str | Path | None = None,
    split: Split = "train",
    role: Literal["id", "spurious_ood"] = "id",
    transform: Callable[[Tensor], Tensor] | None = None,
) -> ImageTable:
    """CelebA grey hair (label 1) vs not (0), with gender (``Male``) as the environment.

    ``role="id"``: the images of ``split`` except bald men; ``role="spurious_ood"``: the bald men
    of ``split`` (label ``-1``), the spurious OOD set of Ming et al. Layout:
    ``list_attr_celeba.txt``, ``list_eval_partition.txt`` (0/1/2 = train/val/test) and
    ``img_align_celeba/`` in ``data_root`` or its ``celeba/`` (or ``CelebA/``) sub-folder.

    Notes:
        Ming et al. subsample the ID training set to a fixed spurious correlation (≈ 0.8); this
        reader keeps CelebA's own partition and natural correlation.
    """
    codes = _split_codes(split)
    if role not in ("id", "spurious_ood"):
        raise DataError(f"role must be 'id' or 'spurious_ood', got {role!r}")
    required = ["list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"]
    folder = find_dir(
        root_candidates(data_root, "celeba", "CelebA"),
        required,
        "CelebA",
        ", ".join(required),
        CELEBA_WHERE,
    )
    names, files, rows = _read_attributes(folder / "list_attr_celeba.txt")
    for attribute in ("Gray_Hair", "Male", "Bald"):
        if attribute not in names:
            raise DataError(f"{folder / 'list_attr_celeba.txt'} has no attribute {attribute}")
    gray, male, bald = (names.index(a) for a in ("Gray_Hair", "Male", "Bald"))
    partition: dict[str, int] = {}
    for number, line in enumerate((folder / "list_eval_partition.txt").read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            partition[parts[0]] = int(parts[1])
        elif parts:
            raise DataError(f"{folder / 'list_eval_partition.txt'}:{number}: expected 'file split'")
    paths, labels, envs = [], [], []
    for file, row in zip(files, rows):
        if file not in partition:
            raise DataError(f"{file} has attributes but no line in list_eval_partition.txt")
        if partition[file] not in codes:
            continue
        is_ood = row[bald] == 1 and row[male] == 1
        if is_ood != (role == "spurious_ood"):
            continue
        paths.append(f"img_align_celeba/{file}")
        labels.append(-1 if is_ood else int(row[gray] == 1))
        envs.append(int(row[male] == 1))
    return ImageTable(
        folder,
        paths,
        labels,
        transform,
        name=f"celeba-{split}-{role}",
        extras={"environment": envs, "group": [2 * max(y, 0) + e for y, e in zip(labels, envs)]},
    )
