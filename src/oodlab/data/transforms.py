"""Train / test transform presets of the papers, and vectorised batch augmentation on the device.

Presets are ``torchvision.transforms.v2`` pipelines on ``uint8`` tensors ``(C, H, W)`` that end
in ``float32`` (scaled to ``[0, 1]``, then normalised where the paper normalises). Multi-view
training (PASCL's two views, PATT's three) wraps them in :class:`MultiView`, which returns a
tuple. Build one by name with :func:`build_transform` (names in :data:`TRANSFORM_PRESETS`).

The batch functions (:func:`crop_flip`, :func:`color_jitter`) augment a whole ``(B, C, H, W)``
batch at once on whatever device it lives on; their random parameters are drawn from a CPU
``torch.Generator`` so a run is reproducible across devices, and drawing is separate from
applying so a resumed loader can replay the draws of the batches it skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import v2

from oodlab.errors import ConfigError, DataError

# Normalisation statistics as each paper's code uses them (long_tailed.md §3.3,
# synthesis_and_mos.md §1.3, §2.4, §3.5).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # ASCOOD / OpenOOD / NPOS training
CIFAR10_STD_PATT = (0.2023, 0.1994, 0.2010)  # PATT (the widespread "0.2023" variant)
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MultiView:
    """Apply several transforms (or one transform ``n`` times) to an image; returns a tuple.

    ``MultiView(t, n=2)`` is PASCL's TwoCrop; ``MultiView([regular, simclr, simclr])`` is PATT's.
    """

    def __init__(self, transforms: Callable[[Tensor], Any] | Sequence[Callable[[Tensor], Any]],
                 n: int = 1) -> None:  # fmt: skip
        self.transforms = list(transforms) if isinstance(transforms, Sequence) else [transforms] * n
        if not self.transforms:
            raise ConfigError("MultiView needs at least one transform")

    def __call__(self, image: Tensor) -> tuple[Any, ...]:
        return tuple(t(image) for t in self.transforms)

    def __repr__(self) -> str:
        return f"MultiView({self.transforms!r})"


class Cutout:
    """Zero a ``size``×``size`` square centred on a uniformly drawn pixel (clipped at the border).

    DeVries & Taylor 2017 (arXiv:1708.04552), one hole, as PATT's regular view uses it. Draws
    from torch's global generator, like the other per-image v2 transforms.
    """

    def __init__(self, size: int = 16) -> None:
        if size < 1:
            raise ConfigError(f"Cutout size must be >= 1, got {size}")
        self.size = size

    def __call__(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        cy = int(torch.randint(height, (1,)))
        cx = int(torch.randint(width, (1,)))
        half = self.size // 2
        out = image.clone()
        out[..., max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 0
        return out

    def __repr__(self) -> str:
        return f"Cutout(size={self.size})"


def _to_float(mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> list[Any]:
    steps: list[Any] = [v2.ToDtype(torch.float32, scale=True)]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    return steps


def _jitter_gray() -> list[Any]:
    """ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8, then RandomGrayscale(0.2) (SimCLR style)."""
    return [v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2)]


def to_float(
    size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> v2.Compose:
    """Test transform: optional ``Resize((size, size))``, scale to ``[0, 1]``, normalise."""
    steps: list[Any] = [v2.Resize((size, size), antialias=True)] if size else []
    return v2.Compose(steps + _to_float(mean, std))


def crop_flip_train(size: int = 32, padding: int = 4) -> v2.Compose:
    """RandomCrop(size, padding) + horizontal flip, no normalisation (OE-style auxiliary view)."""
    return v2.Compose(
        [v2.RandomCrop(size, padding=padding), v2.RandomHorizontalFlip(), *_to_float()]
    )


def pascl_train(size: int = 32) -> v2.Compose:
    """PASCL / ImOOD CIFAR train view: RandomCrop(32, pad 4), flip, ColorJitter(0.4, 0.4, 0.4,
    0.1) p = 0.8, RandomGrayscale(0.2), to ``[0, 1]``; no normalisation (long_tailed.md §1.3)."""
    return v2.Compose(
        [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(), *_jitter_gray(), *_to_float()]
    )


def pascl_views(size: int = 32) -> MultiView:
    """PASCL's two independent views of each ID image."""
    return MultiView(pascl_train(size), n=2)


def pascl_test(size: int = 32) -> v2.Compose:
    """PASCL test transform: ``Resize((32, 32))`` (for the SC-OOD images), to ``[0, 1]``."""
    return to_float(size)


def patt_views(
    size: int = 32, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD_PATT
) -> MultiView:
    """PATT's three ID views (long_tailed.md §3.3).

    View 1: RandomCrop(32) without padding, flip, AutoAugment (CIFAR-10 policy), to float,
    Cutout(16), normalise. Views 2 and 3: RandomResizedCrop(32) (scale 0.08–1), flip, jitter
    p = 0.8, grayscale 0.2, normalise.
    """
    regular = v2.Compose(
        [
            v2.RandomCrop(size),
            v2.RandomHorizontalFlip(),
            v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
            *_to_float(),
            Cutout(16),
            v2.Normalize(list(mean), list(std)),
        ]
    )
    simclr = v2.Compose(
        [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), *_jitter_gray(),
         *_to_float(mean, std)]
    )  # fmt: skip
    return MultiView([regular, simclr, simclr])


def patt_imagenet_views(
    size: int = 224, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> MultiView:
    """PATT's three ImageNet ID views (long_tailed.md §3.3, "ImageNet views"); ``[0, 1]`` unless
    ``mean``/``std`` are given. The outlier view is :func:`imagenet_train`.

    View 1: RandomResizedCrop(224) (scale 0.08–1), flip, ColorJitter(0.4, 0.4, 0.4, 0) always,
    RandAugment (2 ops, magnitude 10, fill = the ImageNet mean in 0–255), to float. Views 2
    and 3: SimCLR at 224: RandomResizedCrop(224) (scale 0.08–1), flip, jitter p = 0.8,
    grayscale 0.2.

    Notes:
        PATT uses timm's ``rand-n2-m10-mstd0.5``; this is torchvision's ``RandAugment`` with
        ``num_magnitude_bins=11``, so that magnitude 10 is the top of every op's range, as
        timm's level 10 of 10 is (shear 0.3, rotation 30°, translation 0.45 of the side,
        posterize 4 bits, solarize threshold 0; torchvision's default 31 bins would make 10 a
        third of it). What still differs from timm: no magnitude noise (timm draws each op's
        magnitude from N(10, 0.5) clipped to [0, 10], i.e. at or just below the top); timm
        applies each drawn op with probability 0.5, torchvision always, but draws from 14 ops
        including Identity where timm's 15 include Invert and SolarizeAdd; timm's brightness,
        colour, contrast and sharpness factor is 1 + 0.9 at m10 (0.1 + 1.8·m/10), torchvision's
        1 ± 0.9 with a random sign; timm interpolates bilinear or bicubic at random, here
        bilinear. timm's ``translate_const`` 100 only concerns its absolute translations, which
        are not in the RandAugment op set.
    """
    randaugment = v2.RandAugment(
        num_ops=2,
        magnitude=10,
        num_magnitude_bins=11,
        interpolation=v2.InterpolationMode.BILINEAR,
        fill=[round(255 * m) for m in IMAGENET_MEAN],
    )
    regular = v2.Compose(
        [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
         v2.ColorJitter(0.4, 0.4, 0.4, 0.0), randaugment, *_to_float(mean, std)]
    )  # fmt: skip
    simclr = v2.Compose(
        [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), *_jitter_gray(),
         *_to_float(mean, std)]
    )  # fmt: skip
    return MultiView([regular, simclr, simclr])


def patt_aux(size: int = 32) -> v2.Compose:
    """PATT's auxiliary-outlier view: crop (pad 4), flip, jitter, grayscale, **ImageNet**
    statistics (the mismatch with the ID normalisation is PATT's, kept for faithfulness)."""
    return v2.Compose(
        [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(), *_jitter_gray(),
         *_to_float(IMAGENET_MEAN, IMAGENET_STD)]
    )  # fmt: skip


def patt_test(
    size: int = 32, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD_PATT
) -> v2.Compose:
    """PATT test transform: Resize((32, 32)), to float, CIFAR normalisation (ID and SC-OOD)."""
    return to_float(size, mean, std)


def _stats(dataset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if dataset == "cifar10":
        return CIFAR10_MEAN, CIFAR10_STD
    if dataset == "cifar100":
        return CIFAR100_MEAN, CIFAR100_STD
    return IMAGENET_MEAN, IMAGENET_STD


_ASCOOD_SIZES = {  # (pre_size, image_size) per dataset (synthesis_and_mos.md §1.3)
    "cifar10": (32, 32),
    "cifar100": (32, 32),
    "waterbirds": (256, 224),
    "celeba": (256, 224),
    "cars": (512, 448),
    "aircraft": (512, 448),
    "imagenet": (256, 224),
    "imagenet200": (256, 224),
}


def _ascood_sizes(dataset: str) -> tuple[int, int]:
    if dataset not in _ASCOOD_SIZES:
        raise ConfigError(f"unknown ASCOOD dataset {dataset!r}; valid: {', '.join(_ASCOOD_SIZES)}")
    return _ASCOOD_SIZES[dataset]


def ascood_train(dataset: str = "cifar10", normalize: bool = True) -> v2.Compose:
    """ASCOOD's "ascood" preprocessor (synthesis_and_mos.md §1.3).

    ImageNet-style sets: RandomResizedCrop(image_size), flip, normalise. CIFAR: Resize(pre_size),
    CenterCrop(image_size), flip, RandomCrop(image_size, pad 4), normalise. ``normalize=False``
    stops at ``[0, 1]`` (for models that normalise inside, ``model.mean`` / ``model.std``).
    """
    pre_size, size = _ascood_sizes(dataset)
    mean, std = _stats(dataset) if normalize else (None, None)
    if dataset.startswith("cifar"):
        steps: list[Any] = [
            v2.Resize(pre_size, antialias=True),
            v2.CenterCrop(size),
            v2.RandomHorizontalFlip(),
            v2.RandomCrop(size, padding=4),
        ]
    else:
        steps = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    return v2.Compose(steps + _to_float(mean, std))


def ascood_test(dataset: str = "cifar10", normalize: bool = True) -> v2.Compose:
    """ASCOOD / OpenOOD test: Resize(pre_size) → CenterCrop(image_size) → normalise (unless
    ``normalize=False``)."""
    pre_size, size = _ascood_sizes(dataset)
    mean, std = _stats(dataset) if normalize else (None, None)
    return v2.Compose(
        [v2.Resize(pre_size, antialias=True), v2.CenterCrop(size), *_to_float(mean, std)]
    )


def imagenet_train(size: int = 224, normalize: bool = True) -> v2.Compose:
    """PASCL's ImageNet-LT train view: RandomResizedCrop(224, scale 0.2–1), flip, jitter p = 0.8,
    grayscale 0.2, ImageNet normalisation (long_tailed.md §1.3; ``normalize=False`` stops at
    ``[0, 1]``). Also PATT's ImageNet outlier view (§3.3)."""
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalize else (None, None)
    return v2.Compose(
        [v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True), v2.RandomHorizontalFlip(),
         *_jitter_gray(), *_to_float(mean, std)]
    )  # fmt: skip


def imagenet_test(size: int = 224, resize: int = 256) -> v2.Compose:
    """Resize(256) → CenterCrop(224) → ImageNet normalisation."""
    return v2.Compose(
        [v2.Resize(resize, antialias=True), v2.CenterCrop(size),
         *_to_float(IMAGENET_MEAN, IMAGENET_STD)]
    )  # fmt: skip


def mos_train(size: int = 480, resize: int = 512) -> v2.Compose:
    """MOS / BiT fine-tuning view (synthesis_and_mos.md §3.5): Resize((512, 512)) (aspect not
    kept), RandomCrop(480), flip, to ``[0, 1]``; the mean = std = 0.5 normalisation is the
    model's (``model.mean`` / ``model.std``)."""
    return v2.Compose(
        [v2.Resize((resize, resize), antialias=True), v2.RandomCrop(size),
         v2.RandomHorizontalFlip(), *_to_float()]
    )  # fmt: skip


def mos_test(size: int = 480) -> v2.Compose:
    """MOS evaluation: Resize((480, 480)), to ``[0, 1]`` (normalisation in the model)."""
    return to_float(size)


def clip_test(size: int = 224) -> v2.Compose:
    """CLIP's preprocessing without its normalisation (NPOS feature extraction, §2.3):
    Resize(224, bicubic) → CenterCrop(224) → ``[0, 1]``."""
    return v2.Compose(
        [v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
         v2.CenterCrop(size), *_to_float()]
    )  # fmt: skip


def npos_views(dataset: str = "cifar10", size: int = 32) -> MultiView:
    """NPOS from-scratch CIFAR views (synthesis_and_mos.md §2.4): two of RandomResizedCrop(32,
    scale 0.2–1), flip, jitter p = 0.8, grayscale 0.2, CIFAR normalisation."""
    mean, std = _stats(dataset)
    view = v2.Compose(
        [v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True), v2.RandomHorizontalFlip(),
         *_jitter_gray(), *_to_float(mean, std)]
    )  # fmt: skip
    return MultiView(view, n=2)


TRANSFORM_PRESETS: dict[str, Callable[..., Any]] = {
    "to_float": to_float,
    "crop_flip": crop_flip_train,
    "pascl_train": pascl_train,
    "pascl_views": pascl_views,
    "pascl_test": pascl_test,
    "patt_views": patt_views,
    "patt_imagenet_views": patt_imagenet_views,
    "patt_aux": patt_aux,
    "patt_test": patt_test,
    "ascood_train": ascood_train,
    "ascood_test": ascood_test,
    "imagenet_train": imagenet_train,
    "imagenet_test": imagenet_test,
    "npos_views": npos_views,
    "mos_train": mos_train,
    "mos_test": mos_test,
    "clip_test": clip_test,
}


def build_transform(name: str, **options: Any) -> Any:
    """The transform preset ``name`` (see :data:`TRANSFORM_PRESETS`) with ``options``."""
    if name not in TRANSFORM_PRESETS:
        raise ConfigError(
            f"unknown transform preset {name!r}; valid: {', '.join(sorted(TRANSFORM_PRESETS))}"
        )
    return TRANSFORM_PRESETS[name](**options)


# ---------------------------------------------------------------- batch augmentation on device


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
