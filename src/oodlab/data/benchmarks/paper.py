"""The papers' benchmark presets: CIFAR-10/100-LT vs SC-OOD with TinyImages outliers
(PASCL / ImOOD / PATT), and ImageNet-LT vs ImageNet-1k-OOD with ImageNet-Extra outliers.

They read the datasets from ``data_root`` in their standard on-disk formats (see
docs/datasets.md); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from oodlab.data.benchmarks.base import Benchmark, register_benchmark


def _cifar_lt_benchmark(
    name: str,
    cifar: str,
    data_root: str | Path | None,
    seed: int,
    imbalance_ratio: float,
    rule: str,
    n_aux: int | None,
    ood_sets: tuple[str, ...] | None,
    scood_root: str | Path | None,
    tinyimages_root: str | Path | None,
    checksums: dict[str, str] | None,
) -> Benchmark:
    from oodlab.data.datasets.cifar import MD5, cifar_lt, read_cifar
    from oodlab.data.datasets.paper_lists import SCOOD_SETS, scood
    from oodlab.data.datasets.tinyimages import tinyimages_300k
    from oodlab.data.transforms import pascl_test
    from oodlab.errors import DatasetNotFoundError

    if data_root is None:
        raise DatasetNotFoundError(
            f"{name} needs --data-root: the folder holding cifar-10-batches-py/ or "
            "cifar-100-python/, 300K_random_images.npy and the SC-OOD data/ folder (see "
            "docs/datasets.md)"
        )
    table = MD5 if checksums is None else checksums
    train = cifar_lt(data_root, cifar, imbalance_ratio, "exp", rule, seed, None, table)  # type: ignore[arg-type]
    test = read_cifar(data_root, cifar, "test", table)
    ood: dict[str, Dataset[Any]] = {}
    fake: dict[str, Dataset[Any]] = {}
    for ood_name in ood_sets if ood_sets is not None else SCOOD_SETS[cifar]:
        true_ood, fake_ood = scood(scood_root or data_root, cifar, ood_name, pascl_test())
        ood[ood_name], fake[ood_name] = true_ood, fake_ood
    aux = tinyimages_300k(tinyimages_root or data_root, n_aux) if n_aux != 0 else None
    other = "cifar100" if cifar == "cifar10" else "cifar10"
    near = tuple(k for k in (other, "tin") if k in ood)
    return Benchmark(
        name=name,
        num_classes=train.longtail.num_classes,
        image_shape=(3, 32, 32),
        train=train,
        test=test,
        ood=ood,
        aux=aux,
        near=near,
        far=tuple(k for k in ood if k not in near),
        class_counts=train.longtail.class_counts,
        lt_indices=train.longtail.indices,
        fake_ood=fake,
        info={
            "id": f"{cifar} train, long-tailed exp profile rho={imbalance_ratio}, rule={rule}",
            "id_test": f"{cifar} test split ({len(test)} images)",
            "aux": f"first {len(aux) if aux is not None else 0} TinyImages 300K random images",
            "ood": {k: len(v) for k, v in ood.items()},  # type: ignore[arg-type]
            "fake_ood_moved_to_id": {k: len(v) for k, v in fake.items()},  # type: ignore[arg-type]
            "seed": seed,
        },
    )


@register_benchmark("cifar10_lt", paper="PASCL (Wang et al. ICML 2022), arXiv:2207.01160")
def cifar10_lt(
    data_root: str | Path | None = None,
    seed: int = 0,
    imbalance_ratio: float = 0.01,
    rule: str = "first",
    n_aux: int | None = 30000,
    ood_sets: tuple[str, ...] | None = None,
    scood_root: str | Path | None = None,
    tinyimages_root: str | Path | None = None,
    checksums: dict[str, str] | None = None,
) -> Benchmark:
    """CIFAR-10-LT (ρ = 0.01) with TinyImages 300K outliers (first 30,000) and the six SC-OOD
    sets (texture, svhn, cifar100, tin, lsun, places365; fake OOD moved to ID), as PASCL / ImOOD.

    PATT uses all 300,000 outliers: ``n_aux=None``. near = cifar100, tin; far = the rest.
    """
    return _cifar_lt_benchmark(
        "cifar10_lt", "cifar10", data_root, seed, imbalance_ratio, rule, n_aux, ood_sets,
        scood_root, tinyimages_root, checksums,
    )  # fmt: skip


@register_benchmark("cifar100_lt", paper="PASCL (Wang et al. ICML 2022), arXiv:2207.01160")
def cifar100_lt(
    data_root: str | Path | None = None,
    seed: int = 0,
    imbalance_ratio: float = 0.01,
    rule: str = "first",
    n_aux: int | None = 30000,
    ood_sets: tuple[str, ...] | None = None,
    scood_root: str | Path | None = None,
    tinyimages_root: str | Path | None = None,
    checksums: dict[str, str] | None = None,
) -> Benchmark:
    """CIFAR-100-LT (ρ = 0.01, 10,847 images) with TinyImages and the six SC-OOD sets."""
    return _cifar_lt_benchmark(
        "cifar100_lt", "cifar100", data_root, seed, imbalance_ratio, rule, n_aux, ood_sets,
        scood_root, tinyimages_root, checksums,
    )  # fmt: skip


@register_benchmark("imagenet_lt", paper="PASCL (Wang et al. ICML 2022), arXiv:2207.01160")
def imagenet_lt(
    data_root: str | Path | None = None,
    seed: int = 0,
    with_aux: bool = True,
) -> Benchmark:
    """ImageNet-LT (115,846 training images) vs ImageNet-1k-OOD (1000 ImageNet-10K classes × 50),
    with ImageNet-Extra (500 further ImageNet-10K classes) as auxiliary outliers.

    Images are decoded from files with PASCL's ImageNet transforms (train: RandomResizedCrop
    224, scale 0.2–1, flip, jitter, grayscale; test: Resize 256, CenterCrop 224), ImageNet
    normalisation. ID test = ``ImageNet_LT_test.txt`` (50,000 images of ImageNet val).
    """
    from oodlab.data.datasets.folders import imagenet_extra, imagenet_ood_test
    from oodlab.data.datasets.paper_lists import imagenet_lt as imagenet_lt_list
    from oodlab.data.transforms import imagenet_test, imagenet_train

    train = imagenet_lt_list(data_root, "train", imagenet_train())
    test = imagenet_lt_list(data_root, "test", imagenet_test())
    ood = {"imagenet_ood_test": imagenet_ood_test(data_root, transform=imagenet_test())}
    aux = imagenet_extra(data_root, transform=imagenet_train()) if with_aux else None
    counts = torch.bincount(train.targets, minlength=1000).tolist()
    return Benchmark(
        name="imagenet_lt",
        num_classes=len(counts),
        image_shape=(3, 224, 224),
        train=train,
        test=test,
        ood=ood,
        aux=aux,
        far=("imagenet_ood_test",),
        class_counts=counts,
        info={
            "id": f"ImageNet-LT train list ({len(train)} images)",
            "id_test": f"ImageNet-LT test list ({len(test)} images)",
            "aux": f"ImageNet-Extra ({len(aux) if aux is not None else 0} images)",
            "ood": {k: len(v) for k, v in ood.items()},
            "seed": seed,
        },
    )
