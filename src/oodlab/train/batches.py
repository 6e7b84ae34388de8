"""The loop's data: the loaders of :mod:`oodlab.data.loaders`, chosen and seeded per stage.

* In-memory uint8 sets (:class:`~oodlab.data.TensorImageDataset` without a transform: CIFAR-LT,
  TinyImages, Fashion-MNIST, synthetic) train through
  :class:`~oodlab.data.loaders.DeviceBatchLoader`: kept on the device, augmented a whole batch
  at a time (``data.crop_padding``, ``data.flip``, ``data.color_jitter``), several views drawn
  independently. Under torchrun each process augments its share of the global batch with the
  draws of the whole batch, so N processes see exactly the single-process batches.
* Any other dataset (decoded from files), or any set to which a method's stage gives its own
  transform (``Stage.transform``, e.g. PATT's three views ``"patt_views"``), trains through
  :class:`~oodlab.data.loaders.EpochLoader` with that transform (which does the
  augmentation); several views call it several times, unless it is a
  :class:`~oodlab.data.MultiView` that makes them.
* With outliers, :class:`~oodlab.data.loaders.IdAuxLoader` zips the ID loader with an endlessly
  cycling auxiliary loader.

Every loader has ``state_dict()`` / ``load_state_dict()`` (its generator and position); the
checkpoint stores them, so a resumed run draws exactly the batches it would have drawn.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from oodlab.config import DataConfig
from oodlab.data import (
    ColorJitterLite,
    DeviceBatchLoader,
    EpochLoader,
    IdAuxLoader,
    MultiView,
    build_transform,
)
from oodlab.errors import ConfigError

Loader = DeviceBatchLoader | EpochLoader | IdAuxLoader


def in_memory(dataset: Any) -> bool:
    """Whether ``dataset`` is a uint8 tensor set without a per-item transform."""
    images = getattr(dataset, "images", None)
    return (
        isinstance(images, Tensor)
        and images.dtype == torch.uint8
        and hasattr(dataset, "targets")
        and getattr(dataset, "transform", None) is None
    )


class _Repeated(Dataset[tuple[tuple[Tensor, ...], int]]):
    """Item ``i`` of ``dataset`` drawn ``views`` times (each through its random transform)."""

    def __init__(self, dataset: Dataset[Any], views: int) -> None:
        self.dataset, self.views = dataset, views

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[tuple[Tensor, ...], int]:
        items = [self.dataset[index] for _ in range(self.views)]
        return tuple(item[0] for item in items), int(items[0][1])


def with_transform(dataset: Dataset[Any], transform: str | Callable[..., Any]) -> Dataset[Any]:
    """A shallow copy of ``dataset`` with another per-item ``transform`` (or preset name of
    :data:`oodlab.data.TRANSFORM_PRESETS`, e.g. ``"patt_views"``)."""
    if not hasattr(dataset, "transform"):
        raise ConfigError(
            f"{type(dataset).__name__} has no transform attribute; a method's stage cannot "
            "give it a training transform"
        )
    copied = copy.copy(dataset)
    copied.transform = build_transform(transform) if isinstance(transform, str) else transform
    return copied


def with_views(dataset: Dataset[Any], views: int) -> Dataset[Any]:
    """``dataset`` whose items hold ``views`` independently transformed copies of the image."""
    transform = getattr(dataset, "transform", None)
    if views == 1 or (isinstance(transform, MultiView) and len(transform.transforms) == views):
        return dataset  # one view, or a transform that already makes the views
    if transform is not None:  # transform once per view, decode once
        copied = copy.copy(dataset)
        copied.transform = MultiView(transform, n=views)  # type: ignore[attr-defined]
        return copied
    return _Repeated(dataset, views)


def build_loader(
    dataset: Dataset[Any],
    global_batch: int,
    data: DataConfig,
    device: torch.device,
    seed: int,
    views: int = 1,
    rank: int = 0,
    world_size: int = 1,
) -> DeviceBatchLoader | EpochLoader:
    """The training loader of ``dataset``: ``global_batch`` images per step over all processes."""
    if global_batch % world_size:
        raise ConfigError(
            f"the batch size {global_batch} is not divisible by the {world_size} processes; "
            "choose a multiple of the world size"
        )
    batch = global_batch // world_size
    if in_memory(dataset):
        return DeviceBatchLoader.from_dataset(
            dataset,
            batch,
            device=device,
            crop_padding=data.crop_padding,
            flip=data.flip,
            views=views,
            generator=seed,
            color_jitter=ColorJitterLite() if data.color_jitter else None,
            rank=rank,
            world_size=world_size,
        )
    return EpochLoader(
        with_views(dataset, views),
        batch,
        seed=seed,
        num_workers=data.num_workers,
        persistent_workers=data.persistent_workers,
        pin_memory=device.type == "cuda",
    )


def as_views(x: Tensor | Sequence[Tensor], device: torch.device) -> list[Tensor]:
    """A loader's image batch as a list of views, float, on ``device``."""
    parts = [x] if isinstance(x, Tensor) else list(x)
    out = []
    for part in parts:
        part = part.to(device, non_blocking=True)
        out.append(part.float().div_(255) if part.dtype == torch.uint8 else part.float())
    return out


def eval_batches(
    dataset: Dataset[Any], batch_size: int, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """The whole of ``dataset`` in order as ``(x, y)`` on ``device`` (uint8 scaled to [0, 1])."""
    if in_memory(dataset):
        images, targets = dataset.images, dataset.targets  # type: ignore[attr-defined]
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device).float().div_(255)
            yield x, targets[start : start + batch_size].to(device)
        return
    for x, y, *_ in DataLoader(dataset, batch_size=batch_size):
        yield as_views(x, device)[0], torch.as_tensor(y).to(device)
