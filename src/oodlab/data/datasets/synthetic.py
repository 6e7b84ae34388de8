"""Generated OOD sets (Gaussian, uniform, Rademacher noise and blobs), for smoke tests only.

After Hendrycks et al.'s Outlier Exposure evaluation: each set is ``n`` uint8 images of
``shape`` drawn from a generator seeded with ``seed``, labelled ``-1``. Values map ``[0, 1]``
to ``0..255``. These sets are far from any natural image; they check that a pipeline runs
and that a score is not inverted, never how good a detector is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from oodlab.data.datasets.base import TensorImageDataset, register_dataset
from oodlab.errors import DataError


def _check(n: int, shape: tuple[int, int, int]) -> None:
    if n < 1 or len(shape) != 3 or min(shape) < 1:
        raise DataError(f"need n >= 1 and shape (C, H, W) of positive sizes, got {n}, {shape}")


def _dataset(values: Tensor, name: str) -> TensorImageDataset:
    images = (values.clamp(0, 1) * 255).round().to(torch.uint8)
    return TensorImageDataset(images, torch.full((len(images),), -1), name=name)


@register_dataset("gaussian_noise", paper="Hendrycks et al. ICLR 2019 (OE), smoke tests only")
def gaussian_noise(
    n: int = 1000, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0, std: float = 0.25
) -> TensorImageDataset:
    """Pixels ``clip(0.5 + std · N(0, 1), 0, 1)``, independent."""
    _check(n, shape)
    g = torch.Generator().manual_seed(seed)
    return _dataset(0.5 + std * torch.randn((n, *shape), generator=g), f"gaussian-{n}-{seed}")


@register_dataset("uniform_noise", paper="Hendrycks et al. ICLR 2019 (OE), smoke tests only")
def uniform_noise(
    n: int = 1000, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0
) -> TensorImageDataset:
    """Pixels uniform on ``[0, 1]``, independent."""
    _check(n, shape)
    g = torch.Generator().manual_seed(seed)
    return _dataset(torch.rand((n, *shape), generator=g), f"uniform-{n}-{seed}")


@register_dataset("rademacher_noise", paper="Hendrycks et al. ICLR 2019 (OE), smoke tests only")
def rademacher_noise(
    n: int = 1000, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0
) -> TensorImageDataset:
    """Pixels 0 or 1 with probability 1/2 each (±1 mapped to ``[0, 1]``)."""
    _check(n, shape)
    g = torch.Generator().manual_seed(seed)
    return _dataset((torch.rand((n, *shape), generator=g) < 0.5).float(), f"rademacher-{n}-{seed}")


@register_dataset("blobs", paper="Hendrycks et al. ICLR 2019 (OE), smoke tests only")
def blobs(
    n: int = 1000, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0
) -> TensorImageDataset:
    """Binary blobs: Bernoulli(0.7) pixels smoothed by a Gaussian (σ = 1), kept where ≥ 0.75.

    The same mask in every channel, so the images are black and white.
    """
    _check(n, shape)
    g = torch.Generator().manual_seed(seed)
    channels, height, width = shape
    field = (torch.rand((n, 1, height, width), generator=g) < 0.7).float()
    offsets = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / 2)
    kernel = kernel / kernel.sum()
    smooth = F.conv2d(F.pad(field, (3, 3, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 7))
    smooth = F.conv2d(F.pad(smooth, (0, 0, 3, 3), mode="replicate"), kernel.view(1, 1, 7, 1))
    mask = (smooth >= 0.75).float().expand(n, channels, height, width)
    return _dataset(mask.contiguous(), f"blobs-{n}-{seed}")
