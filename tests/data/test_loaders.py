"""Seeded, resumable loaders: order, exact resume, torchrun shares, class balance, ID + aux zip."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from oodlab.data import TensorImageDataset
from oodlab.data.loaders import DeviceBatchLoader, EpochLoader, IdAuxLoader
from oodlab.data.samplers import ClassBalancedSampler, EpochSampler
from oodlab.data.transforms import ColorJitterLite
from oodlab.errors import DataError


def numbered_images(n, channels=3, size=8):
    """Image i has every pixel equal to i (so a batch's rows identify its images)."""
    values = torch.arange(n, dtype=torch.uint8)[:, None, None, None]
    return values.expand(n, channels, size, size).contiguous(), torch.arange(n) % 4


def test_epoch_sampler_is_distributed_sampler_and_resumes():
    for rank in (0, 1):
        ours = EpochSampler(10, shuffle=True, seed=3, rank=rank, world_size=2)
        ref = DistributedSampler(range(10), num_replicas=2, rank=rank, shuffle=True, seed=3)
        ours.set_epoch(4)
        ref.set_epoch(4)
        assert list(ours) == list(ref)
    single = EpochSampler(10, seed=3)
    first = list(single)
    single.set_epoch(1)
    assert sorted(first) == list(range(10))
    assert list(single) != first
    single.set_epoch(0)
    single.start = 6
    assert list(single) == first[6:]
    assert len(single) == 4


def test_class_balanced_sampler_balances_classes():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    sampler = ClassBalancedSampler(labels, num_samples=3000, seed=0)
    counts = torch.bincount(labels[list(sampler)], minlength=3).float() / 3000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.03)
    assert list(sampler) == list(ClassBalancedSampler(labels, num_samples=3000, seed=0))
    shares = [list(ClassBalancedSampler(labels, 10, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    assert [i for pair in zip(*shares) for i in pair] == list(sampler)[:10]


def test_epoch_loader_resume_gives_the_same_order():
    images, labels = numbered_images(20)
    dataset = TensorImageDataset(images, labels)
    loader = EpochLoader(dataset, batch_size=4, seed=1)
    assert len(loader) == 5
    full = [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in loader]
    assert sorted(i for batch in full for i in batch) == list(range(20))
    resumed = EpochLoader(dataset, batch_size=4, seed=1)
    seen = []
    for step, (x, _) in enumerate(resumed):
        seen.append((x[:, 0, 0, 0] * 255).round().long().tolist())
        if step == 1:
            state = resumed.state_dict()
            break
    assert state == {"seed": 1, "epoch": 0, "batches_done": 2}
    again = EpochLoader(dataset, batch_size=4, seed=1)
    again.load_state_dict(state)
    seen += [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in again]
    assert seen == full
    assert again.state_dict() == {"seed": 1, "epoch": 1, "batches_done": 0}
    nxt = [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in loader]
    assert nxt != full  # a new permutation each epoch
    workers = EpochLoader(dataset, batch_size=4, seed=1, num_workers=1)
    assert [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in workers] == full
    balanced = EpochLoader(dataset, batch_size=5, class_balanced=True, num_workers=0)
    assert len(balanced) == 4


def test_device_batch_loader_exact_resume_and_views():
    images, labels = numbered_images(40)
    options = dict(batch_size=8, crop_padding=2, flip=True, views=2, generator=5)
    loader = DeviceBatchLoader(images, labels, color_jitter=ColorJitterLite(), **options)
    epoch0 = list(loader)
    epoch1 = list(loader)
    assert len(epoch0) == len(loader) == 5
    x, _y = epoch0[0]
    assert isinstance(x, tuple)
    assert len(x) == 2
    assert not torch.equal(x[0], x[1])
    assert x[0].dtype == torch.float32
    assert x[0].min() >= 0
    assert x[0].max() <= 1
    assert sum(len(b[1]) for b in epoch0) == 40
    interrupted = DeviceBatchLoader(images, labels, color_jitter=ColorJitterLite(), **options)
    it = iter(interrupted)
    next(it), next(it), next(it)
    state = interrupted.state_dict()
    assert state["batches_done"] == 3
    assert state["epoch"] == 0
    others = {k: v for k, v in options.items() if k != "generator"}
    resumed = DeviceBatchLoader(
        images, labels, color_jitter=ColorJitterLite(), generator=99, **others
    )
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 2
    for (xa, ya), (xb, yb) in zip(rest, epoch0[3:]):
        assert torch.equal(ya, yb)
        assert all(torch.equal(u, v) for u, v in zip(xa, xb))
    following = list(resumed)  # the next epoch continues exactly as the uninterrupted run
    assert all(torch.equal(a[1], b[1]) for a, b in zip(following, epoch1))


def test_device_batch_loader_crop_only_moves_pixels():
    images, labels = numbered_images(16, channels=1, size=6)
    loader = DeviceBatchLoader(images, labels, batch_size=16, crop_padding=1, generator=0)
    (x, y), = list(loader)  # fmt: skip
    values = (x * 255).round().long()
    # Each output image holds its own value i and (where the crop reaches the padding) zeros;
    # its label is still i % 4; every image appears once.
    ids = values.amax((1, 2, 3))
    for image, i in zip(values, ids):
        assert set(image.unique().tolist()) <= {0, int(i)}
    assert sorted(ids.tolist()) == list(range(16))
    assert torch.equal(y, ids % 4)
    assert (values == 0).any((1, 2, 3))[ids > 0].any()  # some crops reach into the padding


def test_device_batch_loader_shares_match_single_process():
    images, labels = numbered_images(24)
    single = DeviceBatchLoader(images, labels, batch_size=8, crop_padding=2, flip=True,
                               generator=3, world_size=1, rank=0)  # fmt: skip
    shares = [
        DeviceBatchLoader(
            images,
            labels,
            batch_size=4,
            crop_padding=2,
            flip=True,
            generator=3,
            world_size=2,
            rank=r,
        )
        for r in (0, 1)
    ]
    for (x, y), (x0, y0), (x1, y1) in zip(single, *shares):
        assert torch.equal(x, torch.cat([x0, x1]))
        assert torch.equal(y, torch.cat([y0, y1]))


def test_id_aux_loader_cycles_the_auxiliary_loader():
    images, labels = numbered_images(16)
    aux_images, _ = numbered_images(6)
    aux_images = aux_images + 100
    id_loader = DeviceBatchLoader(images, labels, batch_size=4, generator=0)
    aux_loader = DeviceBatchLoader(aux_images, torch.full((6,), -1), batch_size=2, generator=1)
    zipped = IdAuxLoader(id_loader, aux_loader)
    assert len(zipped) == 4
    steps = list(zipped) + list(zipped)  # two ID epochs = 8 aux batches = 2.67 aux epochs
    aux_values = [(b[0][:, 0, 0, 0] * 255).round().long().tolist() for _, b in steps]
    assert sorted(i for b in aux_values[:3] for i in b) == list(
        range(100, 106)
    )  # each outlier once first
    assert sorted(i for b in aux_values[3:6] for i in b) == list(range(100, 106))
    state = zipped.state_dict()
    assert state["aux"]["batches_done"] == 2
    assert state["id"]["epoch"] == 2
    with pytest.raises(DataError, match="no batch"):
        DeviceBatchLoader(aux_images, torch.zeros(6), batch_size=7)


def test_an_epoch_loader_with_a_large_mixed_seed_iterates():
    # The loop hands loaders seeds mixed up to 2^63; before the 63-bit reduction the per-epoch
    # generator seed overflowed torch's int64 and the first epoch crashed.
    data = TensorImageDataset(torch.zeros(8, 1, 2, 2, dtype=torch.uint8), torch.arange(8) % 2)
    loader = EpochLoader(data, batch_size=4, seed=(1 << 63) - 1)
    labels = torch.cat([batch[1] for batch in loader])
    assert sorted(labels.tolist()) == sorted((torch.arange(8) % 2).tolist())
