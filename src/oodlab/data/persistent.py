"""Persistent DataLoader workers that draw exactly what fresh per-epoch workers would draw.

:class:`~oodlab.data.loaders.EpochLoader` builds a new ``DataLoader`` every epoch, seeded from
``(seed, epoch)``: each worker process starts with torch's seeding of ``base_seed + worker_id``
(``random``, ``torch`` and ``numpy``), ``base_seed`` being the first draw of that epoch's
generator. Starting the workers again every epoch costs seconds per epoch on a fast device, so
with ``persistent_workers`` one ``DataLoader`` serves every epoch and its workers re-seed
themselves at the first item of each new epoch with the very same seeds: the sampler tags every
index with its epoch (:class:`EpochTagged`), the dataset wrapper (:class:`EpochSeeded`)
re-seeds when the tag changes. Batches and augmentations are therefore bit-identical to the
per-epoch loaders, and so is a resumed run (a test checks both).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from oodlab.data.samplers import _seeded


def epoch_base_seed(seed: int, epoch: int) -> int:
    """The ``base_seed`` a fresh ``DataLoader`` of this epoch gives its workers (torch's rule:
    the first int64 draw of the loader's generator, ``_seeded(seed, epoch, stream=1)``)."""
    generator = _seeded(seed, epoch, stream=1)
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def seed_worker(base_seed: int, worker_id: int) -> None:
    """Seed this worker as torch's worker loop does for ``base_seed`` and ``worker_id``."""
    from torch.utils.data._utils.worker import _generate_state

    seed = base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(_generate_state(base_seed, worker_id))  # noqa: NPY002 - torch's own rule


class EpochTagged(Sampler[tuple[int, int]]):
    """The indices of ``sampler`` as ``(epoch, index)``; ``epoch`` read from ``owner.epoch``."""

    def __init__(self, sampler: Sampler[int], owner: Any) -> None:
        self.sampler, self.owner = sampler, owner

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.owner.epoch)
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class EpochSeeded(Dataset[Any]):
    """``dataset[index]`` for ``(epoch, index)`` keys; a worker re-seeds at each new epoch."""

    def __init__(self, dataset: Dataset[Any], seed: int) -> None:
        self.dataset, self.seed = dataset, seed
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self.epoch:
            info = get_worker_info()
            seed_worker(epoch_base_seed(self.seed, epoch), 0 if info is None else info.id)
            self.epoch = epoch
        return self.dataset[index]
