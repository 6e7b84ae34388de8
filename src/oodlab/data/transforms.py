"""Train / test transform presets of the papers, and vectorised batch augmentation on the device.

Presets are ``torchvision.transforms.v2`` pipelines on ``uint8`` tensors ``(C, H, W)`` that end
in ``float32`` (scaled to ``[0, 1]``, then normalised where the paper normalises). Multi-view
training (PASCL's two views, PATT's three) wraps them in :class:`MultiView`, which returns a
tuple. Build one by name with :func:`build_transform` (names in :data:`TRANSFORM_PRESETS`).

The batch functions (:func:`crop_flip`, :func:`color_jitter`, :class:`ColorJitterLite`) augment
a whole ``(B, C, H, W)`` batch at once on the device; they live in
:mod:`oodlab.data.batch_augment` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import v2

from oodlab.data.batch_augment import (  # re-exported: their former home is this module
    ColorJitterLite,
    CropFlipParams,
    apply_crop_flip,
    crop_flip,
    draw_crop_flip,
)
from oodlab.errors import ConfigError

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


__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_STD_PATT",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TRANSFORM_PRESETS",
    "ColorJitterLite",
    "CropFlipParams",
    "Cutout",
    "MultiView",
    "apply_crop_flip",
    "ascood_test",
    "ascood_train",
    "build_transform",
    "clip_test",
    "crop_flip",
    "crop_flip_train",
    "draw_crop_flip",
    "imagenet_test",
    "imagenet_train",
    "mos_test",
    "mos_train",
    "npos_views",
    "pascl_test",
    "pascl_train",
    "pascl_views",
    "patt_aux",
    "patt_imagenet_views",
    "patt_test",
    "patt_views",
    "to_float",
]
