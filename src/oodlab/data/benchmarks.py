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

from oodlab.errors import ConfigError
from oodlab.options import check_call_options
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
        ood_val: the OOD validation set for tuning score hyper-parameters (labels ``-1``;
            OpenOOD's ``val_*`` list of the benchmark, e.g. TIN val for CIFAR, OpenImage-O val
            for ASCOOD's 224/448 px sets), or ``None`` when it is not on disk. Never one of
            the OOD test sets; tuning falls back to ``aux`` without it.
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
    ood_val: Dataset[Any] | None = None
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
    """Build the benchmark preset ``name`` (see ``oodlab list benchmarks``); options it does not
    take, or of the wrong type, raise one line naming the valid ones."""
    factory = BENCHMARKS.get(name).factory
    options = check_call_options(
        factory, options, f"data.options of benchmark {name!r}", skip=("data_root", "seed")
    )
    return factory(data_root=data_root, seed=seed, **options)


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
    from oodlab.data.longtail import longtail_counts

    if min(n_test_per_class, n_ood, n_aux, image_size, channels) < 1 or num_classes < 2:
        raise ConfigError(
            "synthetic: num_classes must be >= 2 and n_test_per_class, n_ood, n_aux, "
            "image_size, channels >= 1"
        )
    g = torch.Generator().manual_seed(seed)
    counts = longtail_counts(n_max, num_classes, imbalance_ratio)

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
