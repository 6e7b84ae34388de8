"""The ``synthetic`` preset: a tiny long-tailed benchmark of generated images, for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from oodlab.data.benchmarks.base import Benchmark, register_benchmark
from oodlab.data.datasets.base import TensorImageDataset
from oodlab.errors import ConfigError


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
