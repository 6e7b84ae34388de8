"""Vectorised batch augmentation on the device: random crop + flip and a light colour jitter.

The batch functions (:func:`crop_flip`, :func:`color_jitter`) augment a whole ``(B, C, H, W)``
batch at once on whatever device it lives on; their random parameters are drawn from a CPU
``torch.Generator`` so a run is reproducible across devices, and drawing is separate from
applying so a resumed loader can replay the draws of the batches it skips. Re-exported by
:mod:`oodlab.data.transforms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class CropFlipParams:
    """Per-image offsets of the crop in the padded image and the flip decisions (CPU tensors)."""

    dy: Tensor | None
    dx: Tensor | None
    flip: Tensor | None

    def select(self, rows: slice) -> CropFlipParams:
        return CropFlipParams(
            *(None if t is None else t[rows] for t in (self.dy, self.dx, self.flip))
        )


def draw_crop_flip(
    batch: int, padding: int, flip: bool, generator: torch.Generator
) -> CropFlipParams:
    """Draw the parameters of :func:`apply_crop_flip`: offsets in ``[0, 2·padding]`` (``(2, B)``:
    rows, then columns; drawn even without padding, so the stream does not depend on it), then
    a flip with probability 1/2 if ``flip``, in this order from ``generator``."""
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
    mask = torch.rand(batch, generator=generator) < 0.5 if flip else None
    return CropFlipParams(offsets[0], offsets[1], mask)


def apply_crop_flip(images: Tensor, padding: int, params: CropFlipParams) -> Tensor:
    """Random crop with zero padding and horizontal flip of a batch ``(B, C, H, W)`` (any dtype),
    vectorised: one gather of the ``B`` windows out of a view of all windows."""
    batch, _, height, width = images.shape
    out = images
    if padding > 0 and params.dy is not None and params.dx is not None:
        padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
        windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (B, C, 2p+1, 2p+1, H, W)
        b = torch.arange(batch, device=images.device)
        out = windows[b, :, params.dy.to(images.device), params.dx.to(images.device)]
    if params.flip is not None:
        out = torch.where(params.flip.to(images.device)[:, None, None, None], out.flip(-1), out)
    return out


def crop_flip(images: Tensor, padding: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Random crop (zero padding ``padding``) and horizontal flip of a batch, in one call."""
    return apply_crop_flip(images, padding, draw_crop_flip(len(images), padding, flip, generator))


@dataclass(frozen=True)
class ColorJitterLite:
    """A vectorised ColorJitter without hue, plus random grayscale, for float batches in [0, 1].

    With probability ``p`` per image: brightness ``x·b``, contrast ``(x − m)·c + m`` (``m`` =
    the image's mean gray level), saturation ``(x − g)·s + g`` (``g`` = the pixel's gray level),
    in this fixed order, each factor uniform in ``[1 − strength, 1 + strength]``; then, with
    probability ``grayscale_p``, the gray image. Hue is not jittered and the order is not
    shuffled, unlike torchvision's ColorJitter (hence "lite").
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    p: float = 0.8
    grayscale_p: float = 0.2

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not (0 <= self.p <= 1 and 0 <= self.grayscale_p <= 1):
            raise ConfigError(f"probabilities must be in [0, 1], got {self.p}, {self.grayscale_p}")

    def draw(self, batch: int, generator: torch.Generator) -> Tensor:
        """``(B, 5)`` parameters: three factors, the apply flag and the grayscale flag."""
        u = torch.rand(batch, 5, generator=generator)
        strengths = torch.tensor([self.brightness, self.contrast, self.saturation])
        factors = 1 + strengths * (2 * u[:, :3] - 1)
        flags = torch.stack([u[:, 3] < self.p, u[:, 4] < self.grayscale_p], 1).float()
        return torch.cat([factors, flags], 1)

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        """Jitter the float batch ``x`` ``(B, C, H, W)`` with parameters from :meth:`draw`."""
        params = params.to(x.device, x.dtype)
        b, c, s, on, gray_flag = (params[:, i, None, None, None] for i in range(5))
        jittered = (x * b).clamp(0, 1)
        mean = _gray(jittered).mean((2, 3), keepdim=True)
        jittered = ((jittered - mean) * c + mean).clamp(0, 1)
        jittered = ((jittered - _gray(jittered)) * s + _gray(jittered)).clamp(0, 1)
        out = torch.where(on > 0, jittered, x)
        gray = _gray(out).expand_as(out)
        return torch.where(gray_flag > 0, gray, out)


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601 luma ``(B, 1, H, W)`` of RGB (the image itself for one channel)."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise DataError(f"color jitter needs 1 or 3 channels, got {x.shape[1]}")
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights[None, :, None, None]).sum(1, keepdim=True)
