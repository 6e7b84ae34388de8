"""ASCOOD's conventional setting on OpenOOD v1.5 (spec synthesis_and_mos.md §1.3): balanced
``cifar10`` / ``cifar100`` from the python pickle batches vs OpenOOD's image lists (+ iSUN).

The CIFAR batches and ``benchmark_imglist/`` + ``images_classic/`` are read from ``data_root``
(see docs/datasets.md); nothing is downloaded. OOD sets are labelled ``-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from oodlab.data.benchmarks.base import Benchmark, register_benchmark
from oodlab.data.benchmarks.synthesis import _cap, _counts, _ood_val, _sizes
from oodlab.errors import DataError, DatasetNotFoundError

CIFAR_OOD = {  # OpenOOD v1.5 + ASCOOD's iSUN (spec §1.3); list in benchmark_imglist/<id>/
    "cifar10": ("cifar100", "tin", "mnist", "svhn", "texture", "places365", "isun"),
    "cifar100": ("cifar10", "tin", "mnist", "svhn", "texture", "places365", "isun"),
}


def _cifar(
    name: Literal["cifar10", "cifar100"],
    data_root: str | Path | None,
    seed: int,
    ood_sets: Sequence[str] | None,
    ood_cap: int | None,
    openood_root: str | Path | None,
    checksums: dict[str, str] | None,
) -> Benchmark:
    from oodlab.data.datasets.cifar import MD5, read_cifar
    from oodlab.data.datasets.paper_lists import openood
    from oodlab.data.transforms import ascood_test

    if data_root is None:
        raise DatasetNotFoundError(
            f"{name} needs --data-root: the folder holding cifar-10-batches-py/ or "
            "cifar-100-python/ and OpenOOD's benchmark_imglist/ + images_classic/ (see "
            "docs/datasets.md)"
        )
    table = MD5 if checksums is None else checksums
    train = read_cifar(data_root, name, "train", table)
    test = read_cifar(data_root, name, "test", table)
    num_classes = 10 if name == "cifar10" else 100
    if isinstance(ood_sets, str):
        ood_sets = [ood_sets]
    names = CIFAR_OOD[name] if ood_sets is None else tuple(ood_sets)
    bad = [n for n in names if n not in CIFAR_OOD[name]]
    if bad:
        raise DataError(
            f"unknown OOD set {bad[0]!r} for {name}; valid: {', '.join(CIFAR_OOD[name])}"
        )
    transform = ascood_test(name, normalize=False)
    ood: dict[str, Dataset[Any]] = {}
    for ood_name in names:
        benchmark = "cifar10" if ood_name == "isun" else name  # ASCOOD keeps one iSUN list
        try:
            found = openood(openood_root or data_root, benchmark, f"test_{ood_name}", transform,
                            ood=True)  # fmt: skip
        except DatasetNotFoundError:
            if ood_name == "isun" and ood_sets is None:
                continue  # iSUN is ASCOOD's addition, not in OpenOOD's download: optional
            raise
        isun = found.root / "iSUN"  # ASCOOD's iSUN images sit under images_classic/iSUN/
        if found.paths and not (found.root / found.paths[0]).is_file() and isun.is_dir():
            found.root = isun
        ood[ood_name] = _cap(found, ood_cap, seed)
    near = tuple(k for k in ood if k in ("cifar10", "cifar100", "tin"))
    ood_val, ood_val_info = _ood_val(openood_root or data_root, name, "val_tin", transform)
    return Benchmark(
        name=name,
        num_classes=num_classes,
        image_shape=(3, 32, 32),
        train=train,
        test=test,
        ood=ood,
        near=near,
        far=tuple(k for k in ood if k not in near),
        class_counts=_counts(train, num_classes, name),
        ood_val=ood_val,
        info={
            "id": f"{name} train ({len(train)} images)",
            "id_test": f"{name} test ({len(test)} images)",
            "ood": _sizes(ood),
            "ood_val": ood_val_info,
            "ood_cap": ood_cap,
            "seed": seed,
        },
    )


@register_benchmark("cifar10", paper="ASCOOD (Regmi, CVPR 2026) on OpenOOD v1.5, arXiv:2306.09301")
def cifar10(
    data_root: str | Path | None = None,
    seed: int = 0,
    ood_sets: Sequence[str] | None = None,
    ood_cap: int | None = None,
    openood_root: str | Path | None = None,
    checksums: dict[str, str] | None = None,
) -> Benchmark:
    """Balanced CIFAR-10 (50,000 / 10,000) vs OpenOOD v1.5's sets, ASCOOD's conventional setting
    (spec §1.3): near = CIFAR-100, TinyImageNet; far = MNIST, SVHN, Textures, Places365, plus
    iSUN when its list is present (ASCOOD's fork adds it); OOD validation set (``ood_val``, for
    tuning scores): TinyImageNet val, ``benchmark_imglist/<name>/val_tin.txt``, when present
    (never capped). ID images stay in memory (uint8);
    OOD images are Resize(32) → CenterCrop(32) → ``[0, 1]``.

    NPOS's protocol (spec §2.4) is ``ood_sets=("svhn", "isun", "places365", "texture")``,
    ``ood_cap=10000`` (a seeded random subset of each set); its LSUN-C is not in OpenOOD's
    lists. ``openood_root``: where ``benchmark_imglist/`` lives when not in ``data_root``.
    """
    return _cifar("cifar10", data_root, seed, ood_sets, ood_cap, openood_root, checksums)


@register_benchmark("cifar100", paper="ASCOOD (Regmi, CVPR 2026) on OpenOOD v1.5, arXiv:2306.09301")
def cifar100(
    data_root: str | Path | None = None,
    seed: int = 0,
    ood_sets: Sequence[str] | None = None,
    ood_cap: int | None = None,
    openood_root: str | Path | None = None,
    checksums: dict[str, str] | None = None,
) -> Benchmark:
    """Balanced CIFAR-100 vs OpenOOD v1.5's sets as ``cifar10`` (near = CIFAR-10, TinyImageNet;
    iSUN from ASCOOD's ``benchmark_imglist/cifar10/test_isun.txt``, as its fork does)."""
    return _cifar("cifar100", data_root, seed, ood_sets, ood_cap, openood_root, checksums)
