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
