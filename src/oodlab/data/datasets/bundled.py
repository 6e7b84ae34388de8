"""Real images that ship with scikit-learn and scikit-image (offline, no download)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from oodlab.data.datasets.base import TensorImageDataset, register_dataset

# Photographs bundled in scikit-image's wheel (no pooch download needed).
PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "moon",
    "page",
    "clock",
    "retina",
    "cell",
    "text",
    "colorwheel",
    "cat",
)
TEXTURES = ("brick", "grass", "gravel")


def _grayscale(name: str) -> torch.Tensor:
    from skimage import color, data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3]) * 255
    return torch.from_numpy(image.astype(np.float32))


def random_crops(
    names: Sequence[str],
    n: int,
    size: int,
    seed: int,
    min_side: int | None = None,
    max_fraction: float = 0.5,
) -> torch.Tensor:
    """``n`` grayscale crops ``(n, 1, size, size)`` uint8 of the named scikit-image pictures.

    Each crop picks a picture uniformly, a square side uniformly in ``[min_side,
    max_fraction · shorter side]`` and a position uniformly, then resizes to ``size`` with
    anti-aliasing, so crops span fine texture and coarse structure.
    """
    g = torch.Generator().manual_seed(seed)
    pictures = [_grayscale(name) for name in names]
    low = min_side or size
    which = torch.randint(len(pictures), (n,), generator=g)
    out = torch.empty(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):
        picture = pictures[int(which[i])]
        high = max(low, int(max_fraction * min(picture.shape)))
        side = int(torch.randint(low, high + 1, (1,), generator=g))
        top = int(torch.randint(0, picture.shape[0] - side + 1, (1,), generator=g))
        left = int(torch.randint(0, picture.shape[1] - side + 1, (1,), generator=g))
        crop = picture[top : top + side, left : left + side][None, None]
        resized = F.interpolate(
            crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return out


@register_dataset(
    "skimage_photos", paper="scikit-image bundled photographs (van der Walt et al. 2014)"
)
@lru_cache(maxsize=4)  # a pure function of its arguments: build once per process
def skimage_photos(n: int = 20000, size: int = 28, seed: int = 0) -> TensorImageDataset:
    """Random grayscale crops of scikit-image's bundled photographs (auxiliary outliers)."""
    return TensorImageDataset(
        random_crops(PHOTOS, n, size, seed),
        np.full(n, -1),
        name=f"skimage_photos-{n}-{size}-{seed}",
    )


@register_dataset("skimage_textures", paper="scikit-image bundled textures: brick, grass, gravel")
@lru_cache(maxsize=4)  # a pure function of its arguments: build once per process
def skimage_textures(n: int = 2000, size: int = 28, seed: int = 1) -> TensorImageDataset:
    """Random grayscale crops of scikit-image's brick, grass and gravel textures (OOD test)."""
    return TensorImageDataset(
        random_crops(TEXTURES, n, size, seed, max_fraction=0.25),
        np.full(n, -1),
        name=f"skimage_textures-{n}-{size}-{seed}",
    )


@register_dataset("sklearn_digits", paper="UCI optical digits as shipped with scikit-learn")
@lru_cache(maxsize=4)  # a pure function of its arguments: build once per process
def sklearn_digits(size: int = 28) -> TensorImageDataset:
    """scikit-learn's 1,797 handwritten 8×8 digits (values 0–16), resized to ``size``² uint8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) * (255 / 16))[:, None]
    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return TensorImageDataset(
        resized.round().clamp(0, 255).to(torch.uint8),
        np.full(len(images), -1),
        name=f"sklearn_digits-{size}",
    )
