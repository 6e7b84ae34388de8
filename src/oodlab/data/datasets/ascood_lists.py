"""ASCOOD's data release: OpenOOD-style image lists for its spurious (Waterbirds, CelebA) and
fine-grained (FGVC-Aircraft, Stanford Cars) settings, the exact splits of the paper.

Layout (ASCOOD's ``openood/evaluation_api/datasets.py``), under ``data_root`` or its ``data/``
or ``openood/`` sub-folder: ``benchmark_imglist/<name>/<name>_{train,val,test}.txt`` and the
near-OOD list ``<name>_spurious_ood.txt`` (Waterbirds, CelebA) or ``<name>_finegrained_ood.txt``
(Aircraft, Cars); the listed paths are relative to ``images_largescale/<name>/`` (Waterbirds'
OOD images: ``images_largescale/waterbirds_ood/``). Lines are ``relative/path label``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from torch import Tensor

from oodlab.data.datasets._files import dataset_missing, root_candidates
from oodlab.data.datasets.base import register_dataset
from oodlab.data.datasets.image_lists import ImageListDataset, read_image_list
from oodlab.errors import DataError

ASCOOD_WHERE = (
    "ASCOOD's data release (github.com/sudarshanregmi/ASCOOD: scripts/download/download_ascood.sh"
    " fetches benchmark_imglist/ and images_largescale/<name>/)"
)
# name -> (near-OOD list, its image folder under images_largescale/)
ASCOOD_NEAR = {
    "waterbirds": ("waterbirds_spurious_ood", "waterbirds_ood"),
    "celeba": ("celeba_spurious_ood", "celeba"),
    "aircraft": ("aircraft_finegrained_ood", "aircraft"),
    "cars": ("cars_finegrained_ood", "cars"),
}

Split = Literal["train", "val", "test", "ood"]


def ascood_release(data_root: str | Path | None, name: str) -> Path | None:
    """The folder holding ASCOOD's lists for ``name`` (``benchmark_imglist/<name>/
    <name>_train.txt``), or ``None`` when it is not there."""
    for folder in root_candidates(data_root, "data", "openood"):
        if (folder / "benchmark_imglist" / name / f"{name}_train.txt").is_file():
            return folder
    return None


def ascood_layout(name: str) -> str:
    """The expected layout of ASCOOD's release for ``name``, for error messages."""
    near, images = ASCOOD_NEAR[name]
    return (
        f"benchmark_imglist/{name}/{name}_{{train,test}}.txt and {near}.txt with the images "
        f"under images_largescale/{name}/" + (f" and {images}/" if images != name else "")
    )


@register_dataset("ascood_list", paper="ASCOOD (Regmi, CVPR 2026), arXiv:2411.10794: data lists")
def ascood_list(
    data_root: str | Path | None = None,
    name: Literal["waterbirds", "celeba", "aircraft", "cars"] = "waterbirds",
    split: Split = "train",
    transform: Callable[[Tensor], Tensor] | None = None,
) -> ImageListDataset:
    """One list of ASCOOD's release: the ID ``train`` / ``val`` / ``test`` list of ``name`` (its
    labels as written) or its near-OOD list (``split="ood"``, relabelled ``-1``)."""
    if name not in ASCOOD_NEAR:
        raise DataError(f"ASCOOD list name must be one of {sorted(ASCOOD_NEAR)}, got {name!r}")
    if split not in ("train", "val", "test", "ood"):
        raise DataError(f"split must be train, val, test or ood, got {split!r}")
    root = ascood_release(data_root, name)
    if root is None:
        raise dataset_missing(
            f"ASCOOD's {name} lists",
            root_candidates(data_root, "data", "openood"),
            ascood_layout(name),
            ASCOOD_WHERE,
        )
    near, near_images = ASCOOD_NEAR[name]
    list_name, images = (near, near_images) if split == "ood" else (f"{name}_{split}", name)
    list_file = root / "benchmark_imglist" / name / f"{list_name}.txt"
    if not list_file.is_file():
        raise dataset_missing(
            f"ASCOOD's {name} {split} list", [list_file.parent], f"{list_name}.txt", ASCOOD_WHERE
        )
    dataset = read_image_list(root / "images_largescale" / images, list_file, transform=transform)
    dataset.name = f"ascood-{list_name}"
    if split == "ood":
        dataset.targets = dataset.targets.new_full(dataset.targets.shape, -1)
    return dataset
