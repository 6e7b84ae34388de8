"""Seeded samplers whose epoch order is recomputed, never stored (so runs resume exactly).

* :class:`EpochSampler`: torch's :class:`~torch.utils.data.DistributedSampler` (one process
  when ``torch.distributed`` is not initialised, the torchrun share otherwise) that can start
  part-way into an epoch; the permutation of epoch ``e`` is ``randperm(N)`` from a generator
  seeded with ``seed + e``, so it is recomputed, never stored.
* :class:`ClassBalancedSampler`: every class equally likely, then a uniform image within it
  (PATT's calibration sampler), drawn with replacement from ``seed + epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DistributedSampler, Sampler

from oodlab.errors import DataError


def process_share() -> tuple[int, int]:
    """``(rank, world_size)`` of this process under torchrun, ``(0, 1)`` otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _seeded(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    # Reduced to 63 bits: callers pass already-mixed seeds, which would overflow torch's int64
    # seed here (values below 2^63 are unchanged).
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 7919 + stream) % (1 << 63))


class EpochSampler(DistributedSampler[int]):
    """A seeded :class:`DistributedSampler` that can skip the first ``start`` indices of its epoch.

    Args:
        data: the dataset (only its length is used) or its length.
        shuffle: permute each epoch (``randperm`` seeded with ``seed + epoch``).
        seed: the run's seed.
        drop_last: under torchrun, drop the tail instead of padding to equal shares.
        rank, world_size: default: this process's share (see :func:`process_share`).
    """

    def __init__(
        self,
        data: Sized | int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        auto_rank, auto_world = process_share()
        sized: Sized = range(data) if isinstance(data, int) else data
        super().__init__(
            sized,  # type: ignore[arg-type]
            num_replicas=auto_world if world_size is None else world_size,
            rank=auto_rank if rank is None else rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start

    @property
    def epoch_size(self) -> int:
        """Indices of a whole epoch in this process (whatever ``start`` is)."""
        return int(self.num_samples)


class ClassBalancedSampler(Sampler[int]):
    """Indices drawn with replacement so that every class is equally likely (seed + epoch).

    The weight of image ``i`` is ``1 / n_{y_i}``; ``num_samples`` defaults to the dataset size.
    Under torchrun each process takes every ``world_size``-th draw from its rank on.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Tensor,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        targets = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if targets.ndim != 1 or len(targets) == 0 or int(targets.min()) < 0:
            raise DataError("class-balanced sampling needs labels >= 0 for every image")
        counts = torch.bincount(targets).double()
        self.weights = 1.0 / counts[targets]
        auto_rank, auto_world = process_share()
        self.rank = auto_rank if rank is None else rank
        self.world_size = auto_world if world_size is None else world_size
        self.total = len(targets) if num_samples is None else num_samples
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.total, replacement=True, generator=g)
        return iter(draws[self.rank :: self.world_size].tolist()[self.start :])

    def __len__(self) -> int:
        return self.epoch_size - self.start

    @property
    def epoch_size(self) -> int:
        """Indices of a whole epoch in this process (whatever ``start`` is)."""
        return len(range(self.rank, self.total, self.world_size))
