"""Persistent workers draw exactly what a fresh DataLoader per epoch draws, resumed or not."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset

from oodlab.data.loaders import EpochLoader


class _Noisy(Dataset):
    """Item ``i``: ``i`` plus one draw of each RNG a transform may use (torch, random, numpy)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int):
        noise = [float(torch.rand(())), random.random(), float(np.random.rand())]  # noqa: NPY002
        return torch.tensor([float(index), *noise]), index


def _epochs(loader: EpochLoader, n: int) -> list[torch.Tensor]:
    return [torch.cat([x for x, _ in loader]) for _ in range(n)]


def test_persistent_workers_equal_fresh_loaders_per_epoch_and_resume():
    state = torch.get_rng_state()
    fresh = _epochs(EpochLoader(_Noisy(), 3, seed=5, num_workers=2), 3)
    persistent = EpochLoader(_Noisy(), 3, seed=5, num_workers=2, persistent_workers=True)
    kept = _epochs(persistent, 3)
    assert persistent._persistent_loader is not None  # one DataLoader served all three epochs
    for a, b in zip(fresh, kept, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(fresh[0], fresh[1])  # the epochs do differ (order and draws)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is not consumed
    resumed = EpochLoader(_Noisy(), 3, seed=5, num_workers=2, persistent_workers=True)
    resumed.load_state_dict({"seed": 5, "epoch": 2, "batches_done": 0})
    assert torch.equal(_epochs(resumed, 1)[0], fresh[2])
