"""Benchmark presets on ImageNet-1k folder trees: NPOS's ``imagenet100`` (spec Appendix A
classes) and MOS's ``imagenet1k``, both against MOS's curated iNaturalist / SUN / Places /
Textures sets.

ImageNet is read from ``train/<wnid>/`` and ``val/<wnid>/`` under ``data_root`` (see
docs/datasets.md); nothing is downloaded. Images end at ``float32`` in ``[0, 1]``: the configs
normalise inside the model (``model.mean`` / ``model.std``). OOD sets are labelled ``-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from oodlab.data.benchmarks.base import Benchmark, register_benchmark
from oodlab.data.benchmarks.synthesis import (
    Transform,
    _cap,
    _counts,
    _folder_far,
    _ood_val,
    _sizes,
)
from oodlab.errors import DataError

MOS_OOD = ("inaturalist", "sun", "places", "textures")


def _imagenet(
    name: str,
    data_root: str | Path | None,
    seed: int,
    classes: Sequence[int] | None,
    train_t: Transform,
    test_t: Transform,
    size: int,
    ood_root: str | Path | None,
    ood_sets: Sequence[str] | None,
    ood_cap: int | None,
    id_cap: int | None = None,
) -> Benchmark:
    from oodlab.data.datasets.imagenet_folders import imagenet_folder

    if isinstance(ood_sets, str):
        ood_sets = [ood_sets]
    names = MOS_OOD if ood_sets is None else tuple(ood_sets)
    bad = [n for n in names if n not in MOS_OOD]
    if bad:
        raise DataError(f"unknown OOD set {bad[0]!r}; valid: {', '.join(MOS_OOD)}")
    train = imagenet_folder(data_root, "train", classes, train_t)
    test = _cap(imagenet_folder(data_root, "val", classes, test_t), id_cap, seed)
    ood: dict[str, Dataset[Any]] = {
        n: _cap(_folder_far(n, ood_root or data_root, test_t), ood_cap, seed) for n in names
    }
    num_classes = 1000 if classes is None else len(classes)
    # OpenOOD v1.5's ImageNet-1k OOD validation list (OpenImage-O val), for tuning; optional.
    ood_val, ood_val_info = _ood_val(ood_root or data_root, "imagenet", "val_openimage_o", test_t)
    return Benchmark(
        name=name,
        num_classes=num_classes,
        image_shape=(3, size, size),
        train=train,
        test=test,
        ood=ood,
        far=tuple(ood),
        class_counts=_counts(train, num_classes, name),
        ood_val=ood_val,
        info={
            "ood_val": ood_val_info,
            "id": f"ImageNet-1k train/ folders, {num_classes} classes ({len(train)} images)",
            "id_test": f"ImageNet-1k val/ folders ({len(test)} images)",
            "ood": _sizes(ood),
            "ood_cap": ood_cap,
            "id_cap": id_cap,
            "image_size": size,
            "seed": seed,
        },
    )


@register_benchmark("imagenet100", paper="NPOS (Tao et al. ICLR 2023), arXiv:2303.02966")
def imagenet100(
    data_root: str | Path | None = None,
    seed: int = 0,
    preprocess: Literal["ascood", "clip"] = "ascood",
    ood_root: str | Path | None = None,
    ood_sets: Sequence[str] | None = None,
    ood_cap: int | None = None,
) -> Benchmark:
    """NPOS's ImageNet-100 (the 100 classes of spec Appendix A, labelled in that order) from the
    ImageNet-1k ``train/`` and ``val/`` folder trees (val: 5,000 images) vs MOS's iNaturalist,
    SUN, Places and Textures (all far), as NPOS and MCM evaluate it.

    ``preprocess="ascood"`` (for ``configs/imagenet100/ascood.yaml``): RandomResizedCrop(224) +
    flip in training, Resize 256 → CenterCrop 224 at test. ``"clip"``: NPOS's extraction
    preprocessing, Resize(224, bicubic) → CenterCrop(224) for every set, no augmentation (CLIP's
    normalisation is the model's). NPOS caps OOD sets at 2 × |ID test| = 10,000, which the MOS
    sets already satisfy; ``ood_cap`` takes a seeded subset. ``ood_root``: where the OOD folders
    live when not in ``data_root``.
    """
    from oodlab.data.datasets.imagenet_folders import NPOS_IMAGENET100
    from oodlab.data.transforms import ascood_test, ascood_train, clip_test

    if preprocess not in ("ascood", "clip"):
        raise DataError(f"preprocess must be 'ascood' or 'clip', got {preprocess!r}")
    train_t, test_t = (
        (ascood_train("imagenet", normalize=False), ascood_test("imagenet", normalize=False))
        if preprocess == "ascood"
        else (clip_test(), clip_test())
    )
    return _imagenet("imagenet100", data_root, seed, NPOS_IMAGENET100, train_t, test_t, 224,
                     ood_root, ood_sets, ood_cap)  # fmt: skip


@register_benchmark("imagenet1k", paper="MOS (Huang & Li, CVPR 2021), arXiv:2105.01879")
def imagenet1k(
    data_root: str | Path | None = None,
    seed: int = 0,
    ood_root: str | Path | None = None,
    ood_sets: Sequence[str] | None = None,
    ood_cap: int | None = None,
    image_size: int = 480,
    id_cap: int | None = None,
) -> Benchmark:
    """ImageNet-1k (train / val folder trees, labels = sorted-wnid index, val 50,000) vs MOS's
    four curated sets: iNaturalist, SUN, Places (10,000 each) and Textures (5,640), all far
    (spec §3.7). MOS's transforms at 480 px: Resize((512, 512)) → RandomCrop(480) + flip in
    training, Resize((480, 480)) at test; the mean = std = 0.5 normalisation is the model's.

    Quick-check overrides, not MOS's protocol (both are recorded in ``info``): ``image_size``
    (default MOS's 480; the training resize scales with it, 512/480) and ``id_cap`` (a seeded
    subset of the ID val images, as ``ood_cap`` for the OOD sets; default all 50,000).
    """
    from oodlab.data.transforms import mos_test, mos_train

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive integer (MOS: 480), got {image_size!r}")
    if id_cap is not None and (
        isinstance(id_cap, bool) or not isinstance(id_cap, int) or id_cap < 1
    ):
        raise DataError(
            f"id_cap must be a positive integer or null (all val images), got {id_cap!r}"
        )
    train_t = mos_train(image_size, round(image_size * 512 / 480))
    return _imagenet("imagenet1k", data_root, seed, None, train_t, mos_test(image_size),
                     image_size, ood_root, ood_sets, ood_cap, id_cap)  # fmt: skip
