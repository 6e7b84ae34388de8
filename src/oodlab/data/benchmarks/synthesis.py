"""ASCOOD's benchmark presets (Regmi, arXiv:2411.10794; spec synthesis_and_mos.md §1.3): the
spurious setting (``waterbirds``, ``celeba``) and the fine-grained one (``aircraft``, ``cars``).
The conventional CIFAR setting is in :mod:`oodlab.data.benchmarks.openood`, NPOS's and MOS's
ImageNet presets in :mod:`oodlab.data.benchmarks.imagenet`.

They read the datasets from ``data_root`` in their standard on-disk formats (see
docs/datasets.md); nothing is downloaded. The file-decoded sets end at ``float32`` in
``[0, 1]``: the published configs normalise inside the model (``model.mean`` / ``model.std``),
which is also where ASCOOD's outliers are synthesised. Every OOD set is labelled ``-1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.data.benchmarks.base import Benchmark, register_benchmark
from oodlab.data.datasets.image_lists import ImageListDataset
from oodlab.errors import DataError, DatasetNotFoundError

Transform = Callable[[Tensor], Tensor]
Source = Literal["auto", "ascood", "original"]

# ASCOOD's far-OOD sets for its spurious and fine-grained settings (spec §1.3): OpenOOD lists
# (benchmark, list), with the MOS-style folders as a fallback for the three that have one.
ASCOOD_FAR = {
    "ninco": ("imagenet200", "test_ninco"),
    "openimage_o": ("imagenet200", "test_openimage_o"),
    "sun": ("sun", "sun"),
    "texture": ("cifar100", "test_texture"),
    "inaturalist": ("imagenet200", "test_inaturalist"),
}
_FOLDER_FALLBACK = ("sun", "texture", "inaturalist")
# ASCOOD's OOD validation set for tuning post-hoc scores (spec §1.3, §1.6): OpenImage-O val.
ASCOOD_OOD_VAL = ("imagenet200", "val_openimage_o")
PLACESBG_WHERE = (
    "Ming et al.'s background-only Places images (github.com/deeplearning-wisc/Spurious_OOD, "
    "datasets/generate_placebg.py), or ASCOOD's waterbirds_ood release"
)


def _labels(dataset: Dataset[Any]) -> Tensor:
    return torch.as_tensor(dataset.targets)  # type: ignore[attr-defined]


def _counts(train: Dataset[Any], num_classes: int, what: str) -> list[int]:
    labels = _labels(train)
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"{what}: training labels must lie in [0, {num_classes}), got "
                        f"{labels.unique().tolist()[:5]}")  # fmt: skip
    return torch.bincount(labels, minlength=num_classes).tolist()


def _sizes(sets: dict[str, Dataset[Any]]) -> dict[str, int]:
    return {k: len(v) for k, v in sets.items()}  # type: ignore[arg-type]


def _folder_far(name: str, root: str | Path | None, transform: Transform) -> ImageListDataset:
    from oodlab.data.datasets.folders import inaturalist, places, sun, textures

    reader = {"sun": sun, "texture": textures, "textures": textures, "places": places,
              "inaturalist": inaturalist}[name]  # fmt: skip
    return reader(root, transform=transform)


def _ascood_far(
    data_root: str | Path | None, names: Sequence[str] | None, transform: Transform
) -> tuple[dict[str, Dataset[Any]], list[str]]:
    """ASCOOD's far-OOD sets found under ``data_root`` (all of ``names`` must be there when
    given), and the names of the default sets that were not found."""
    from oodlab.data.datasets.paper_lists import OPENOOD_WHERE, openood

    sets: dict[str, Dataset[Any]] = {}
    missing: list[str] = []
    names = [names] if isinstance(names, str) else names
    for name in ASCOOD_FAR if names is None else names:
        if name not in ASCOOD_FAR:
            raise DataError(f"unknown far-OOD set {name!r}; valid: {', '.join(ASCOOD_FAR)}")
        benchmark, list_name = ASCOOD_FAR[name]
        try:
            sets[name] = openood(data_root, benchmark, list_name, transform, ood=True)
            continue
        except DatasetNotFoundError:
            pass
        if name in _FOLDER_FALLBACK:
            try:
                sets[name] = _folder_far(name, data_root, transform)
                continue
            except DatasetNotFoundError:
                pass
        if names is not None:
            folder = " (or its MOS-style folder)" if name in _FOLDER_FALLBACK else ""
            raise DatasetNotFoundError(
                f"far-OOD set {name} not found under {data_root}; expected the OpenOOD list "
                f"benchmark_imglist/{benchmark}/{list_name}.txt with its images{folder}. "
                f"Get it: {OPENOOD_WHERE}"
            )
        missing.append(name)
    return sets, missing


def _ood_val(
    data_root: str | Path | None, benchmark: str, list_name: str, transform: Transform
) -> tuple[ImageListDataset | None, str]:
    """OpenOOD's OOD validation list ``benchmark_imglist/<benchmark>/<list_name>.txt`` when it
    and its first image are on disk (else ``None``), and a line for ``info`` saying which."""
    from oodlab.data.datasets.paper_lists import openood

    where = f"benchmark_imglist/{benchmark}/{list_name}.txt"
    try:
        found = openood(data_root, benchmark, list_name, transform, ood=True)
    except DatasetNotFoundError:
        return None, f"not found ({where} with its images)"
    if not found.paths or not (found.root / found.paths[0]).is_file():
        return None, f"not found ({where} is there, its images are not)"
    return found, f"{where} ({len(found)} images)"


def _ascood_benchmark(
    name: str,
    num_classes: int,
    size: int,
    data_root: str | Path | None,
    seed: int,
    source: Source,
    far_ood: Sequence[str] | None,
    original: Callable[[Transform, Transform], tuple[Any, Any, Any, dict[str, Any]]],
) -> Benchmark:
    """The ID train / test sets and the near-OOD set from ASCOOD's lists or from the original
    release (``original(train_transform, test_transform)``), plus ASCOOD's far-OOD sets."""
    from oodlab.data.datasets.ascood_lists import (
        ASCOOD_WHERE,
        ascood_layout,
        ascood_list,
        ascood_release,
    )
    from oodlab.data.transforms import ascood_test, ascood_train

    if source not in ("auto", "ascood", "original"):
        raise DataError(f"source must be auto, ascood or original, got {source!r}")
    train_t = ascood_train(name, normalize=False)
    test_t = ascood_test(name, normalize=False)
    use_lists = source == "ascood" or (
        source == "auto" and ascood_release(data_root, name) is not None
    )
    if use_lists:
        train = ascood_list(data_root, name, "train", train_t)
        test = ascood_list(data_root, name, "test", test_t)
        near = ascood_list(data_root, name, "ood", test_t)
        info: dict[str, Any] = {"source": "ASCOOD's lists (benchmark_imglist/)"}
    else:
        try:
            train, test, near, info = original(train_t, test_t)
        except DatasetNotFoundError as exc:
            if source == "original":
                raise
            raise DatasetNotFoundError(
                f"{exc} Or give ASCOOD's own release: {ascood_layout(name)} ({ASCOOD_WHERE})"
            ) from None
    counts = _counts(train, num_classes, name)
    far, missing = _ascood_far(data_root, far_ood, test_t)
    near_name = f"{name}_ood"
    ood: dict[str, Dataset[Any]] = {near_name: near, **far}
    ood_val, ood_val_info = _ood_val(data_root, *ASCOOD_OOD_VAL, test_t)
    return Benchmark(
        name=name,
        num_classes=num_classes,
        image_shape=(3, size, size),
        train=train,
        test=test,
        ood=ood,
        near=(near_name,),
        far=tuple(far),
        class_counts=counts,
        ood_val=ood_val,
        info={
            **info,
            "id": f"{name} train ({len(train)} images, {num_classes} classes)",
            "id_test": f"{name} test ({len(test)} images)",
            "ood": _sizes(ood),
            "far_ood_not_found": missing,
            "ood_val": ood_val_info,
            "seed": seed,
        },
    )


@register_benchmark("waterbirds", paper="ASCOOD (Regmi, CVPR 2026), arXiv:2411.10794; spurious")
def waterbirds(
    data_root: str | Path | None = None,
    seed: int = 0,
    source: Source = "auto",
    far_ood: Sequence[str] | None = None,
) -> Benchmark:
    """Waterbirds (2 classes: landbird / waterbird) vs its spurious OOD set, ASCOOD's spurious
    setting after Ming, Yin & Li (AAAI 2022, arXiv:2109.05642); ASCOOD Table 1.

    ID: train / test. near: ``waterbirds_ood``, background-only Places images (water or land,
    no bird). far: ASCOOD's NINCO, OpenImage-O, SUN, Textures, iNaturalist, those present under
    ``data_root`` (``far_ood=`` names required ones). OOD validation set (``ood_val``, for
    tuning scores): OpenImage-O val, OpenOOD's ``benchmark_imglist/imagenet200/
    val_openimage_o.txt``, when present. 224 px (Resize 256 → CenterCrop 224 at
    test, RandomResizedCrop 224 + flip in training, spec §1.3).

    ``source="ascood"`` reads ASCOOD's lists (its exact split, correlation ≈ 0.9);
    ``"original"`` the group DRO ``metadata.csv`` release (split 0 = train, 2 = test;
    ``waterbird_complete90_forest2water2/``, Ming et al.'s r = 0.9 build, is preferred over the
    0.95 one when both exist) with ``placesbg/`` as the OOD set; ``"auto"``: the lists if found.
    """
    from oodlab.data.datasets._files import dataset_missing, root_candidates
    from oodlab.data.datasets.image_lists import read_image_folder
    from oodlab.data.datasets.spurious import waterbirds as read_waterbirds

    def original(train_t: Transform, test_t: Transform) -> tuple[Any, Any, Any, dict[str, Any]]:
        root = root_candidates(data_root, "waterbird_complete90_forest2water2")
        base = root[1] if (root[1] / "metadata.csv").is_file() else root[0]
        train = read_waterbirds(base, "train", train_t)
        test = read_waterbirds(base, "test", test_t)
        places = root_candidates(data_root, "placesbg", "ood_datasets/placesbg", "waterbirds_ood")
        folder = next((p for p in places[1:] if p.is_dir()), None)
        if folder is None:
            raise dataset_missing("Waterbirds spurious OOD set", places[1:],
                                  "a folder of background-only images", PLACESBG_WHERE)  # fmt: skip
        near = read_image_folder(folder, transform=test_t)
        near.name = "waterbirds-placesbg"
        return train, test, near, {"source": f"metadata.csv in {train.root}; OOD {folder}"}

    return _ascood_benchmark("waterbirds", 2, 224, data_root, seed, source, far_ood, original)


@register_benchmark("celeba", paper="ASCOOD (Regmi, CVPR 2026), arXiv:2411.10794; spurious")
def celeba(
    data_root: str | Path | None = None,
    seed: int = 0,
    source: Source = "auto",
    far_ood: Sequence[str] | None = None,
) -> Benchmark:
    """CelebA grey hair vs not (gender the spurious environment) vs bald men, ASCOOD's spurious
    setting after Ming et al. (AAAI 2022); ASCOOD Table 1. 224 px as ``waterbirds``.

    ``source="original"``: CelebA's own partition (train 0, test 2) minus the bald men, with
    its natural correlation (Ming et al. / ASCOOD subsample to ≈ 0.8: ``source="ascood"`` reads
    their lists); near ``celeba_ood`` = the bald men of all three partitions (they never appear
    in the ID sets; Ming et al.'s ``celebA_ood.csv`` also spans partitions). far as
    ``waterbirds``.
    """
    from oodlab.data.datasets.spurious import celeba as read_celeba

    def original(train_t: Transform, test_t: Transform) -> tuple[Any, Any, Any, dict[str, Any]]:
        train = read_celeba(data_root, "train", "id", train_t)
        test = read_celeba(data_root, "test", "id", test_t)
        near = read_celeba(data_root, "all", "spurious_ood", test_t)
        return train, test, near, {"source": f"CelebA files in {train.root}"}

    return _ascood_benchmark("celeba", 2, 224, data_root, seed, source, far_ood, original)


def _finegrained(
    name: Literal["aircraft", "cars"],
    data_root: str | Path | None,
    seed: int,
    source: Source,
    far_ood: Sequence[str] | None,
    id_classes: Sequence[int] | None,
) -> Benchmark:
    from oodlab.data.datasets.finegrained import fgvc_aircraft, stanford_cars

    reader: Callable[..., Any] = fgvc_aircraft if name == "aircraft" else stanford_cars
    train_split = "trainval" if name == "aircraft" else "train"

    def original(train_t: Transform, test_t: Transform) -> tuple[Any, Any, Any, dict[str, Any]]:
        kw: dict[str, Any] = {"id_classes": id_classes, "seed": seed}
        train = reader(data_root, train_split, "id", transform=train_t, **kw)
        test = reader(data_root, "test", "id", transform=test_t, **kw)
        near = reader(data_root, "test", "ood", transform=test_t, **kw)
        return train, test, near, {"source": f"{name} files in {train.root}",
                                   "id_classes": train.id_classes}  # fmt: skip

    num_classes = 90 if name == "aircraft" else 150
    if id_classes is not None:  # a split of one's own: the original release, not ASCOOD's lists
        if source == "ascood":
            raise DataError(f"{name}: id_classes needs source='original' (ASCOOD's lists fix "
                            "the split)")  # fmt: skip
        source, num_classes = "original", len(id_classes)
    return _ascood_benchmark(name, num_classes, 448, data_root, seed, source, far_ood, original)


@register_benchmark("aircraft", paper="ASCOOD (Regmi, CVPR 2026), arXiv:2411.10794; fine-grained")
def aircraft(
    data_root: str | Path | None = None,
    seed: int = 0,
    source: Source = "auto",
    far_ood: Sequence[str] | None = None,
    id_classes: Sequence[int] | None = None,
) -> Benchmark:
    """FGVC-Aircraft, 90 ID variants vs the 10 held out (near ``aircraft_ood``), ASCOOD's
    fine-grained setting after MixOE (Zhang et al. WACV 2023); ASCOOD Table 1. 448 px (Resize
    512 → CenterCrop 448 at test, RandomResizedCrop 448 + flip in training, spec §1.2-§1.3).

    ``source="ascood"``: ASCOOD's lists (MixOE's split). ``"original"``: the 2013b release,
    ID train = ``trainval`` of the ID variants, ID test = their ``test`` images, near = the
    ``test`` images of the held-out variants; the split is ``id_classes`` or 90 of 100 drawn
    with ``numpy.random.default_rng(seed)`` (MixOE's own draw is not published; giving
    ``id_classes`` implies ``"original"``). far as ``waterbirds``.
    """
    return _finegrained("aircraft", data_root, seed, source, far_ood, id_classes)


@register_benchmark("cars", paper="ASCOOD (Regmi, CVPR 2026), arXiv:2411.10794; fine-grained")
def cars(
    data_root: str | Path | None = None,
    seed: int = 0,
    source: Source = "auto",
    far_ood: Sequence[str] | None = None,
    id_classes: Sequence[int] | None = None,
) -> Benchmark:
    """Stanford Cars, 150 ID classes vs the 46 held out (near ``cars_ood``), as ``aircraft``
    (``"original"``: ID train = ``train`` split, test and near from the ``test`` split; the
    default split draws 150 of 196 with ``seed``)."""
    return _finegrained("cars", data_root, seed, source, far_ood, id_classes)


def _cap(dataset: ImageListDataset, cap: int | None, seed: int) -> ImageListDataset:
    """A seeded random subset of at most ``cap`` images (in list order); all if ``None``."""
    if cap is None or len(dataset) <= cap:
        return dataset
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(dataset), generator=g)[:cap].sort().values.tolist()
    return ImageListDataset(dataset.root, [dataset.paths[i] for i in keep],
                            dataset.targets[keep].tolist(), dataset.transform,
                            f"{dataset.name}-cap{cap}-s{seed}")  # fmt: skip
