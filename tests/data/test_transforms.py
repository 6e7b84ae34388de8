"""Transform presets and the vectorised batch augmentation, against per-image computations."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from oodlab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRANSFORM_PRESETS,
    ColorJitterLite,
    Cutout,
    MultiView,
    apply_crop_flip,
    build_transform,
    crop_flip,
    draw_crop_flip,
    imagenet_train,
    patt_imagenet_views,
)
from oodlab.errors import ConfigError


def test_crop_flip_equals_per_image_crop_of_padded_image():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), generator=g, dtype=torch.uint8)
    params = draw_crop_flip(16, 2, True, torch.Generator().manual_seed(5))
    out = apply_crop_flip(images, 2, params)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(16):
        dy, dx = int(params.dy[i]), int(params.dx[i])
        expected = padded[i, :, dy : dy + 8, dx : dx + 8]
        if params.flip[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)
    assert params.flip.any()
    assert not params.flip.all()
    assert set(params.dy.tolist()) <= set(range(5))


def test_crop_flip_draws_are_seeded_and_independent_of_padding():
    images = torch.randint(0, 256, (32, 1, 12, 12), dtype=torch.uint8)
    a = crop_flip(images, 3, True, torch.Generator().manual_seed(7))
    assert torch.equal(a, crop_flip(images, 3, True, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, crop_flip(images, 3, True, torch.Generator().manual_seed(8)))
    # Without padding only the flips act, and they are the flips drawn with padding.
    flips = draw_crop_flip(32, 3, True, torch.Generator().manual_seed(7)).flip
    b = crop_flip(images, 0, True, torch.Generator().manual_seed(7))
    assert torch.equal(b[flips], images[flips].flip(-1))
    assert torch.equal(b[~flips], images[~flips])


def test_color_jitter_lite_values():
    x = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    off = ColorJitterLite(0, 0, 0, p=1.0, grayscale_p=0.0)
    assert torch.allclose(off.apply(x, off.draw(6, torch.Generator())), x)
    # Brightness only, factor b: x * b clipped.
    bright = ColorJitterLite(0.4, 0, 0, p=1.0, grayscale_p=0.0)
    params = bright.draw(6, torch.Generator().manual_seed(2))
    b = params[:, 0]
    assert ((b >= 0.6) & (b <= 1.4)).all()
    expected = (x * b[:, None, None, None]).clamp(0, 1)
    assert torch.allclose(bright.apply(x, params), expected, atol=1e-6)
    gray = ColorJitterLite(0, 0, 0, p=0.0, grayscale_p=1.0)
    y = gray.apply(x, gray.draw(6, torch.Generator()))
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(y[:, 1], luma, atol=1e-6)
    assert torch.equal(y[:, 0], y[:, 2])
    with pytest.raises(ConfigError, match="brightness"):
        ColorJitterLite(brightness=2.0)


def test_presets_output_ranges_and_views():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator())
    torch.manual_seed(0)
    a = build_transform("pascl_views")(image)
    assert isinstance(a, tuple)
    assert len(a) == 2
    assert all(v.dtype == torch.float32 and v.min() >= 0 and v.max() <= 1 for v in a)
    assert not torch.equal(a[0], a[1])  # independent views
    torch.manual_seed(0)
    b = build_transform("pascl_views")(image)
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # seeded => reproducible
    views = build_transform("patt_views")(image)
    assert len(views) == 3
    assert views[0].min() < 0
    test = build_transform("pascl_test")(image[:, :20, :24])
    assert tuple(test.shape) == (3, 32, 32)
    plain = build_transform("to_float")(image)
    assert torch.allclose(plain, image.float() / 255, atol=1e-7)
    ascood = build_transform("ascood_test", dataset="cifar10")(image)
    mean = torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None]
    std = torch.tensor([0.2470, 0.2435, 0.2616])[:, None, None]
    assert torch.allclose(ascood, (image.float() / 255 - mean) / std, atol=1e-5)
    big = torch.randint(0, 256, (3, 300, 280), dtype=torch.uint8)
    assert tuple(build_transform("imagenet_test")(big).shape) == (3, 224, 224)
    assert tuple(build_transform("ascood_train", dataset="cars")(big).shape) == (3, 448, 448)
    with pytest.raises(ConfigError, match="valid"):
        build_transform("nope")
    assert {"pascl_train", "patt_aux", "npos_views", "imagenet_train"} <= set(TRANSFORM_PRESETS)


def test_cutout_and_multiview():
    torch.manual_seed(3)
    x = torch.ones(1, 32, 32)
    y = Cutout(16)(x)
    zeros = (y == 0).nonzero()
    side_h = zeros[:, 1].max() - zeros[:, 1].min() + 1
    side_w = zeros[:, 2].max() - zeros[:, 2].min() + 1
    assert (y == 0).sum() == side_h * side_w
    assert side_h <= 16
    assert side_w <= 16
    assert MultiView([lambda t: t + 1, lambda t: t * 2])(torch.tensor(3)) == (4, 6)


def _steps(compose):
    return [type(t) for t in compose.transforms]


def test_patt_imagenet_views_and_outlier_view():
    image = torch.randint(0, 256, (3, 37, 50), dtype=torch.uint8, generator=torch.Generator())
    views = build_transform("patt_imagenet_views")
    torch.manual_seed(0)
    a = views(image)
    assert len(a) == 3
    for v in a:
        assert tuple(v.shape) == (3, 224, 224)
        assert v.dtype == torch.float32
        assert 0 <= v.min() <= v.max() <= 1
    assert not torch.equal(a[1], a[2])  # views 2 and 3: same recipe, independent draws
    torch.manual_seed(0)
    assert all(torch.equal(u, v) for u, v in zip(a, views(image)))  # seeded => reproducible
    # With statistics, the same draws normalised: ImageNet's, as imagenet_lt's transforms do.
    torch.manual_seed(0)
    b = patt_imagenet_views(224, IMAGENET_MEAN, IMAGENET_STD)(image)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    for u, v in zip(a, b):
        torch.testing.assert_close(v, (u - mean) / std, rtol=0, atol=1e-5)
    # View 1 is the "regular" view (jitter always, then RandAugment), views 2/3 SimCLR's.
    regular, simclr, _ = views.transforms
    assert v2.RandAugment in _steps(regular)
    assert v2.ColorJitter in _steps(regular)
    assert v2.RandAugment not in _steps(simclr)
    assert {v2.RandomApply, v2.RandomGrayscale} <= set(_steps(simclr))
    crops = [
        t for t in (*regular.transforms, *simclr.transforms) if isinstance(t, v2.RandomResizedCrop)
    ]
    assert [c.scale for c in crops] == [(0.08, 1.0), (0.08, 1.0)]
    ra = next(t for t in regular.transforms if isinstance(t, v2.RandAugment))
    assert (ra.num_ops, ra.magnitude) == (2, 10)
    assert ra.fill == [124, 116, 104]  # the ImageNet mean in 0-255
    # Magnitude 10 is the top of each op's range, as timm's level 10 of 10 (shear 0.3, 30°).
    space = ra._AUGMENTATION_SPACE
    for name, top in (("ShearX", 0.3), ("Rotate", 30.0), ("Solarize", 0.0)):
        magnitudes = space[name][0](ra.num_magnitude_bins, 224, 224)
        assert float(magnitudes[ra.magnitude]) == pytest.approx(top)
    # The outlier view: RandomResizedCrop(scale 0.2-1) + jitter/grayscale, [0, 1] or normalised.
    aux = imagenet_train(64, normalize=False)
    assert next(t for t in aux.transforms if isinstance(t, v2.RandomResizedCrop)).scale == (0.2, 1)
    torch.manual_seed(1)
    x = aux(image)
    assert tuple(x.shape) == (3, 64, 64)
    assert 0 <= x.min() <= x.max() <= 1
    torch.manual_seed(1)
    torch.testing.assert_close(imagenet_train(64)(image), (x - mean) / std, rtol=0, atol=1e-5)
