"""The offline CPU presets on Fashion-MNIST-LT: ``fmnist_lt`` (10 classes) and ``fmnist_lt_open``
(four classes held out as near-OOD), against scikit-learn digits and scikit-image textures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.data.benchmarks.base import Benchmark, register_benchmark
from oodlab.data.datasets.base import TensorImageDataset

FMNIST_OPEN_HELD_OUT = (6, 7, 8, 9)  # Shirt, Sneaker, Bag, Ankle boot


def _stratified_subset(labels: Tensor, size: int | None, seed: int) -> Tensor:
    """Indices of a seeded subset of ``size`` rows with the class proportions kept (all if None)."""
    if size is None or size >= len(labels):
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    keep = []
    for c in labels.unique().tolist():
        members = order[labels[order] == c]
        keep.append(members[: max(1, round(size * len(members) / len(labels)))])
    return torch.cat(keep).sort().values


def _fmnist_benchmark(
    name: str,
    data_root: str | Path | None,
    seed: int,
    id_classes: tuple[int, ...],
    n_max: int,
    imbalance_ratio: float,
    rule: str,
    test_size: int | None,
    n_aux: int,
    n_textures: int,
) -> Benchmark:
    from oodlab.data.datasets.bundled import skimage_photos, skimage_textures, sklearn_digits
    from oodlab.data.datasets.idx import fashion_mnist
    from oodlab.data.longtail import longtail_indices

    train_full = fashion_mnist(data_root, "train")
    test_full = fashion_mnist(data_root, "test")
    relabel = torch.full((10,), -1, dtype=torch.long)
    relabel[list(id_classes)] = torch.arange(len(id_classes))
    is_id = relabel[train_full.targets] >= 0
    id_rows = torch.nonzero(is_id).flatten()
    targets = relabel[train_full.targets[id_rows]]
    lt = longtail_indices(targets.numpy(), imbalance_ratio, "exp", n_max, rule, seed)  # type: ignore[arg-type]
    rows = id_rows[torch.from_numpy(lt.indices)]
    train = TensorImageDataset(
        train_full.images[rows], relabel[train_full.targets[rows]], name=f"{name}-train-{seed}"
    )

    test_is_id = relabel[test_full.targets] >= 0
    test_rows = torch.nonzero(test_is_id).flatten()
    test_rows = test_rows[_stratified_subset(test_full.targets[test_rows], test_size, seed)]
    test = TensorImageDataset(
        test_full.images[test_rows], relabel[test_full.targets[test_rows]], name=f"{name}-test"
    )
    ood: dict[str, Dataset[Any]] = {}
    near: tuple[str, ...] = ()
    held_out = [c for c in range(10) if c not in id_classes]
    if held_out:
        rows_out = torch.nonzero(~test_is_id).flatten()
        rows_out = rows_out[_stratified_subset(test_full.targets[rows_out], test_size, seed)]
        ood["fmnist_held_out"] = TensorImageDataset(
            test_full.images[rows_out], torch.full((len(rows_out),), -1), name=f"{name}-held-out"
        )
        near = ("fmnist_held_out",)
    ood["digits"] = sklearn_digits(28)
    ood["textures"] = skimage_textures(n_textures, 28, seed=1)
    aux = skimage_photos(n_aux, 28, seed=0)
    return Benchmark(
        name=name,
        num_classes=len(id_classes),
        image_shape=(1, 28, 28),
        train=train,
        test=test,
        ood=ood,
        aux=aux,
        near=near,
        far=("digits", "textures"),
        class_counts=lt.class_counts,
        lt_indices=rows.numpy(),
        info={
            "id": f"Fashion-MNIST train, classes {list(id_classes)} relabelled "
            f"0..{len(id_classes) - 1}, long-tailed exp profile rho={imbalance_ratio}, "
            f"n_max={n_max}, rule={rule}",
            "id_test": f"Fashion-MNIST test split ({len(test)} images)",
            "aux": f"{n_aux} random 28x28 grayscale crops of scikit-image's bundled photographs",
            "ood": {k: len(v) for k, v in ood.items()},  # type: ignore[arg-type]
            "held_out_classes": held_out,
            "seed": seed,
        },
    )


@register_benchmark("fmnist_lt", paper="oodlab offline CPU benchmark (Fashion-MNIST-LT)")
def fmnist_lt(
    data_root: str | Path | None = None,
    seed: int = 0,
    n_max: int = 6000,
    imbalance_ratio: float = 0.01,
    rule: str = "first",
    test_size: int | None = None,
    n_aux: int = 20000,
    n_textures: int = 2000,
) -> Benchmark:
    """Fashion-MNIST-LT (10 classes, ρ = 0.01) vs scikit-learn digits and scikit-image textures.

    Auxiliary outliers are crops of scikit-image's photographs; the auxiliary and test
    sources never overlap. ``test_size`` subsamples the ID test set (class-stratified, seeded)
    for quick runs. See docs/datasets.md for sizes and provenance.
    """
    return _fmnist_benchmark(
        "fmnist_lt",
        data_root,
        seed,
        tuple(range(10)),
        n_max,
        imbalance_ratio,
        rule,
        test_size,
        n_aux,
        n_textures,
    )


@register_benchmark(
    "fmnist_lt_open", paper="oodlab offline CPU benchmark (open-set Fashion-MNIST-LT)"
)
def fmnist_lt_open(
    data_root: str | Path | None = None,
    seed: int = 0,
    n_max: int = 6000,
    imbalance_ratio: float = 0.01,
    rule: str = "first",
    test_size: int | None = None,
    n_aux: int = 20000,
    n_textures: int = 2000,
) -> Benchmark:
    """As ``fmnist_lt`` with Shirt, Sneaker, Bag and Ankle boot held out of the ID classes;
    their test images are the near-OOD set ``fmnist_held_out``."""
    id_classes = tuple(c for c in range(10) if c not in FMNIST_OPEN_HELD_OUT)
    return _fmnist_benchmark(
        "fmnist_lt_open",
        data_root,
        seed,
        id_classes,
        n_max,
        imbalance_ratio,
        rule,
        test_size,
        n_aux,
        n_textures,
    )
