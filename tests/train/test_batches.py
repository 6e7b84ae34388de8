"""The loop's data glue: which loader a dataset gets, multi-view items, evaluation batches."""

from __future__ import annotations

import pytest
import torch

from oodlab.config import DataConfig
from oodlab.data import DeviceBatchLoader, EpochLoader, TensorImageDataset
from oodlab.errors import ConfigError
from oodlab.train.batches import as_views, build_loader, eval_batches, with_views

CPU = torch.device("cpu")


def numbered(n: int = 24) -> TensorImageDataset:
    """Image i has every pixel equal to i, so a batch's rows name its images."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, 4, 4)
    return TensorImageDataset(images.contiguous(), torch.arange(n) % 3)


def test_in_memory_sets_train_on_the_device_with_views():
    data = DataConfig(crop_padding=0, flip=False)
    loader = build_loader(numbered(), 8, data, CPU, seed=0, views=2)
    assert isinstance(loader, DeviceBatchLoader)
    (x, y), *_ = list(loader)
    views = as_views(x, CPU)
    assert len(views) == 2
    ids = (views[0][:, 0, 0, 0] * 255).round().long()
    assert torch.equal(views[0], views[1])  # no augmentation: both views are the image
    assert torch.equal(ids % 3, y)


def test_transformed_sets_use_a_dataloader_and_their_transform_per_view():
    calls = []

    def transform(image):
        calls.append(1)
        return image.float() / 255 + len(calls)  # differs on every call

    dataset = TensorImageDataset(numbered().images, numbered().targets, transform=transform)
    loader = build_loader(dataset, 8, DataConfig(), CPU, seed=0, views=3)
    assert isinstance(loader, EpochLoader)
    x, _ = next(iter(loader))
    views = as_views(x, CPU)
    assert len(views) == 3
    assert len(calls) == 24  # 8 images × 3 views
    assert not torch.equal(views[0], views[1])
    repeated = with_views(numbered(), 2)  # no transform attribute to wrap: items drawn twice
    assert len(repeated[5][0]) == 2


def test_global_batch_must_split_over_processes():
    with pytest.raises(ConfigError, match="divisible"):
        build_loader(numbered(), 9, DataConfig(), CPU, seed=0, rank=0, world_size=2)
    loader = build_loader(numbered(), 8, DataConfig(), CPU, seed=0, rank=1, world_size=2)
    x, _ = next(iter(loader))
    assert len(x) == 4  # this process's share of the global batch


def test_eval_batches_cover_the_set_in_order():
    dataset = numbered(10)
    xs, ys = zip(*eval_batches(dataset, 4, CPU))
    assert [len(y) for y in ys] == [4, 4, 2]
    assert torch.equal((torch.cat(xs)[:, 0, 0, 0] * 255).round().long(), torch.arange(10))
    transformed = TensorImageDataset(dataset.images, dataset.targets, transform=lambda i: i)
    xt = torch.cat([x for x, _ in eval_batches(transformed, 4, CPU)])
    assert torch.equal(xt, torch.cat(xs))  # uint8 items are scaled the same way
