"""Fine-grained sets with held-out classes (ASCOOD's fine-grained setting, after MixOE):
FGVC-Aircraft (``images_variant_*.txt`` lists) and Stanford Cars (devkit ``.mat`` annotations).

The classes are split into ID classes (relabelled ``0..K−1`` in ascending order of their
original index) and held-out classes, whose images form the near-OOD set (label ``-1``). The
split is a parameter; the default draws 90 of the 100 Aircraft variants and 150 of the 196 Cars
classes with ``numpy.random.default_rng(seed)`` (seed 0). ASCOOD's own lists
(``*_finegrained_ood.txt``) can be read with the ``image_list`` reader instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import Tensor

from oodlab.data.datasets._files import (
    ImageTable,
    check_id_classes,
    find_dir,
    root_candidates,
    seeded_class_split,
)
from oodlab.data.datasets.base import register_dataset
from oodlab.errors import DataError

Role = Literal["id", "ood", "all"]

AIRCRAFT_WHERE = (
    "FGVC-Aircraft 2013b (Maji et al. 2013): fgvc-aircraft-2013b.tar.gz from "
    "www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/, or torchvision.datasets.FGVCAircraft"
)
CARS_WHERE = (
    "Stanford Cars (Krause et al. 2013): the images cars_train/, cars_test/ and the devkit "
    "(cars_meta.mat, cars_train_annos.mat, cars_test_annos_withlabels.mat), e.g. as laid out "
    "by torchvision.datasets.StanfordCars"
)


def _select(
    classes: np.ndarray,
    num_classes: int,
    role: Role,
    id_classes: Sequence[int] | None,
    num_id: int,
    seed: int,
    what: str,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rows to keep, their labels, and the sorted ID classes."""
    if role not in ("id", "ood", "all"):
        raise DataError(f"role must be 'id', 'ood' or 'all', got {role!r}")
    chosen = (
        seeded_class_split(num_classes, num_id, seed)
        if id_classes is None
        else check_id_classes(id_classes, num_classes, what)
    )
    relabel = np.full(num_classes, -1, dtype=np.int64)
    relabel[chosen] = np.arange(len(chosen))
    if role == "all":
        return np.arange(len(classes)), classes, chosen
    keep = np.flatnonzero((relabel[classes] >= 0) == (role == "id"))
    return keep, relabel[classes[keep]], chosen


@register_dataset("fgvc_aircraft", paper="Maji et al. 2013, arXiv:1306.5151; ASCOOD fine-grained")
def fgvc_aircraft(
    data_root: str | Path | None = None,
    split: Literal["train", "val", "trainval", "test"] = "trainval",
    role: Role = "id",
    id_classes: Sequence[int] | None = None,
    seed: int = 0,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> ImageTable:
    """FGVC-Aircraft variants: ``role="id"`` the 90 ID variants, ``"ood"`` the 10 held out.

    Layout: ``variants.txt`` (100 names; class index = line number), ``images_variant_{split}.txt``
    (lines ``<image id> <variant name>``) and ``images/<image id>.jpg``, in ``data_root`` or
    ``data_root/fgvc-aircraft-2013b/data`` or ``data_root/data``. ``extras["variant"]`` keeps the
    original class index; ``dataset.id_classes`` the chosen ID variants.
    """
    if split not in ("train", "val", "trainval", "test"):
        raise DataError(f"split must be train, val, trainval or test, got {split!r}")
    list_name = f"images_variant_{split}.txt"
    folder = find_dir(
        root_candidates(data_root, "fgvc-aircraft-2013b/data", "data"),
        ["variants.txt", list_name, "images"],
        "FGVC-Aircraft",
        f"variants.txt, {list_name} and images/<id>.jpg",
        AIRCRAFT_WHERE,
    )
    variants = [v.strip() for v in (folder / "variants.txt").read_text().splitlines() if v.strip()]
    index = {name: i for i, name in enumerate(variants)}
    paths, classes = [], []
    for number, line in enumerate((folder / list_name).read_text().splitlines(), 1):
        if not line.strip():
            continue
        image_id, _, variant = line.strip().partition(" ")
        if variant not in index:
            raise DataError(
                f"{folder / list_name}:{number}: variant {variant!r} not in variants.txt"
            )
        paths.append(f"images/{image_id}.jpg")
        classes.append(index[variant])
    return _table(folder, paths, np.asarray(classes), len(variants), role, id_classes, 90, seed,
                  transform, f"fgvc_aircraft-{split}", "variant")  # fmt: skip


def _table(
    folder: Path,
    paths: list[str],
    classes: np.ndarray,
    num_classes: int,
    role: Role,
    id_classes: Sequence[int] | None,
    num_id: int,
    seed: int,
    transform: Callable[[Tensor], Tensor] | None,
    name: str,
    column: str,
) -> ImageTable:
    what = name.split("-")[0]
    keep, labels, chosen = _select(classes, num_classes, role, id_classes, num_id, seed, what)
    table = ImageTable(
        folder,
        [paths[i] for i in keep],
        labels.tolist(),
        transform,
        name=f"{name}-{role}-" + ".".join(map(str, chosen)),
        extras={column: classes[keep]},
    )
    table.id_classes = chosen  # type: ignore[attr-defined]
    return table


def _load_mat_annotations(path: Path) -> Any:
    from scipy.io import loadmat

    try:
        return loadmat(path, squeeze_me=True)["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a Stanford Cars annotation .mat file: {exc}") from None


@register_dataset("stanford_cars", paper="Krause et al. 3dRR 2013; ASCOOD fine-grained")
def stanford_cars(
    data_root: str | Path | None = None,
    split: Literal["train", "test"] = "train",
    role: Role = "id",
    id_classes: Sequence[int] | None = None,
    seed: int = 0,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> ImageTable:
    """Stanford Cars: ``role="id"`` the 150 ID classes, ``"ood"`` the 46 held out.

    Layout (torchvision's): ``devkit/cars_train_annos.mat``, ``cars_test_annos_withlabels.mat``
    (beside ``devkit/`` or inside it), images ``cars_train/`` and ``cars_test/``, in ``data_root``
    or ``data_root/stanford_cars``. Classes are the 1-based ``class`` field minus one (196).
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    annotations = (
        "devkit/cars_train_annos.mat" if split == "train" else "cars_test_annos_withlabels.mat"
    )
    candidates = root_candidates(data_root, "stanford_cars")
    images = f"cars_{split}"
    if split == "test":  # the test annotations sit beside devkit/ or inside it
        candidates = [c for root in candidates for c in (root, root / "devkit")]
    folder = find_dir(
        candidates,
        [annotations, images] if split == "train" else [annotations],
        "Stanford Cars",
        f"{annotations} and {images}/",
        CARS_WHERE,
    )
    records = np.atleast_1d(_load_mat_annotations(folder / annotations))
    classes = np.asarray([int(r["class"]) - 1 for r in records], dtype=np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= 196):
        raise DataError(f"{folder / annotations}: class indices must be 1..196")
    root = folder if (folder / images).is_dir() else folder.parent
    paths = [f"{images}/{r['fname']}" for r in records]
    return _table(root, paths, classes, 196, role, id_classes, 150, seed, transform,
                  f"stanford_cars-{split}", "class")  # fmt: skip
