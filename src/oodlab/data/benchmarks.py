"""Benchmarks: an ID train/test pair, auxiliary outliers and named OOD test sets.

A benchmark preset is registered in :data:`BENCHMARKS` as a function
``build(data_root, seed, **options) -> Benchmark``. Every dataset it returns yields
``(image, label)`` pairs; images are ``uint8`` or ``float`` tensors ``(C, H, W)``
after the dataset's transform, and labels are ``-1`` for OOD and auxiliary samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.registry import Registry

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
register_benchmark = BENCHMARKS.register

Transform = Callable[[Tensor], Tensor]


class TensorImageDataset(Dataset[tuple[Tensor, int]]):
    """Images held in memory as one ``uint8`` tensor ``(N, C, H, W)``, with integer labels.

    Without a transform an item is the image scaled to ``float32`` in ``[0, 1]``.
    ``images`` stays accessible so a training loop can move the whole set to the
    device and augment batches there (the small-image speed lever).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | np.ndarray | list[int],
        transform: Transform | None = None,
        name: str = "tensor",
    ) -> None:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.targets = labels
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        x = self.transform(image) if self.transform is not None else image.float() / 255
        return x, int(self.targets[index])

    def fingerprint(self) -> str:
        """Identity for the extraction cache: name, size, and a hash of the pixels and labels."""
        digest = hashlib.sha256(self.images.numpy().tobytes())
        digest.update(self.targets.numpy().tobytes())
        return f"{self.name}-n{len(self)}-{digest.hexdigest()[:16]}-{self.transform!r}"


@dataclass
class Benchmark:
    """One OOD benchmark: what to train on, what to test on, and how the OOD sets group.

    Attributes:
        name: the preset name.
        num_classes: number of ID classes ``C``.
        image_shape: ``(C, H, W)`` of the model input.
        train: ID training set (long-tail subsample already applied), labels in ``[0, C)``.
        test: ID test set.
        ood: OOD test sets by name (labels ``-1``).
        aux: auxiliary outliers for OE-style training (labels ``-1``), or ``None``.
        near: names of the near-OOD sets; ``far``: names of the far-OOD sets.
        class_counts: training images per class (the long-tail profile; gives the prior π).
        lt_indices: indices of the kept training images in the full training set, if subsampled.
        info: provenance and sizes, written beside every run.
        fake_ood: per OOD set, its images that belong semantically to an ID class (SC-OOD's
            ``sc_label ≥ 0``, labelled with that class). PASCL / ImOOD / PATT count them as ID
            when that set is evaluated: the ID side of set ``k`` is ``test`` + ``fake_ood[k]``.
    """

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    train: Dataset[Any]
    test: Dataset[Any]
    ood: dict[str, Dataset[Any]]
    aux: Dataset[Any] | None = None
    near: tuple[str, ...] = ()
    far: tuple[str, ...] = ()
    class_counts: list[int] = field(default_factory=list)
    lt_indices: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    fake_ood: dict[str, Dataset[Any]] = field(default_factory=dict)

    @property
    def prior(self) -> Tensor:
        counts = torch.tensor(self.class_counts, dtype=torch.float64)
        return counts / counts.sum()


def build_benchmark(
    name: str, data_root: str | Path | None = None, seed: int = 0, **options: Any
) -> Benchmark:
    """Build the benchmark preset ``name`` (see ``oodlab list benchmarks``)."""
    return BENCHMARKS.get(name).factory(data_root=data_root, seed=seed, **options)


@register_benchmark("synthetic", paper="generated data for tests and smoke runs")
def synthetic(
    data_root: str | Path | None = None,
    seed: int = 0,
    num_classes: int = 4,
    image_size: int = 16,
    channels: int = 1,
    n_max: int = 64,
    imbalance_ratio: float = 0.25,
    n_test_per_class: int = 16,
    n_ood: int = 48,
    n_aux: int = 128,
) -> Benchmark:
    """A tiny long-tailed benchmark of generated images, for tests and smoke runs only.

    Class ``c`` is a bright square at a class-specific position on a noisy background;
    OOD sets are uniform noise ("noise") and large bright blobs ("blobs"); auxiliary
    outliers are smooth random textures. Counts follow ``n_c = int(n_max · ρ^(c/(C-1)))``.
    """
    g = torch.Generator().manual_seed(seed)
    counts = [
        int(n_max * imbalance_ratio ** (c / max(num_classes - 1, 1))) for c in range(num_classes)
    ]

    def class_images(c: int, n: int) -> Tensor:
        x = 40 * torch.rand(n, channels, image_size, image_size, generator=g)
        side = image_size // 2
        row = (c * 3) % (image_size - side + 1)
        col = (c * 5) % (image_size - side + 1)
        x[:, :, row : row + side, col : col + side] += 180
        return x.clamp(0, 255).to(torch.uint8)

    def id_split(per_class: list[int]) -> TensorImageDataset:
        images = torch.cat([class_images(c, n) for c, n in enumerate(per_class)])
        labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
        return TensorImageDataset(images, labels, name=f"synthetic-id-{seed}")

    shape = (n_ood, channels, image_size, image_size)
    noise = (255 * torch.rand(shape, generator=g)).to(torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(image_size), torch.arange(image_size), indexing="ij")
    centres = torch.rand(n_ood, 2, generator=g) * image_size
    dist2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (
        xx[None] - centres[:, 1, None, None]
    ) ** 2
    blobs = (255 * torch.exp(-dist2 / (image_size**2 / 8)))[:, None].expand(shape).to(torch.uint8)
    aux_lowres = torch.rand(n_aux, channels, 4, 4, generator=g)
    aux = torch.nn.functional.interpolate(aux_lowres, size=image_size, mode="bilinear")
    minus_one = torch.full((n_ood,), -1)
    return Benchmark(
        name="synthetic",
        num_classes=num_classes,
        image_shape=(channels, image_size, image_size),
        train=id_split(counts),
        test=id_split([n_test_per_class] * num_classes),
        ood={
            "noise": TensorImageDataset(noise, minus_one, name=f"synthetic-noise-{seed}"),
            "blobs": TensorImageDataset(
                blobs.contiguous(), minus_one, name=f"synthetic-blobs-{seed}"
            ),
        },
        aux=TensorImageDataset(
            (255 * aux).to(torch.uint8), torch.full((n_aux,), -1), name=f"synthetic-aux-{seed}"
        ),
        near=("blobs",),
        far=("noise",),
        class_counts=counts,
        info={"source": "generated", "seed": seed},
    )


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
