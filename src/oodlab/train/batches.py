"""Deterministic, resumable batches of in-memory uint8 images, augmented on the device.

The whole training set lives on the training device as one uint8 tensor; each step
gathers a batch, applies a random crop with zero padding and a horizontal flip to the
whole batch at once, and scales it to ``[0, 1]``. The permutation and the augmentation
parameters of epoch ``e`` come from a generator seeded with ``(seed, e)``, so an epoch
can be replayed exactly after a restart without saving any generator state. Under
torchrun each process takes its share of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from oodlab.errors import DataError


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one (seed, epoch, stream): independent of the device and of restarts."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 7919 + stream) % (2**63))


def crop_flip(images: Tensor, padding: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Random crop (zero padding ``padding``) and horizontal flip of a uint8 batch (B, C, H, W)."""
    batch, channels, height, width = images.shape
    device = images.device
    out = images
    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(device)
        dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(device)
        rows = (dy[:, None] + torch.arange(height, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width, device=device))[:, None, None, :]
        b = torch.arange(batch, device=device)[:, None, None, None]
        c = torch.arange(channels, device=device)[None, :, None, None]
        out = padded[b, c, rows, cols]
    if flip:
        mask = (torch.rand(batch, generator=generator) < 0.5).to(device)[:, None, None, None]
        out = torch.where(mask, out.flip(-1), out)
    return out


class DeviceBatches:
    """Batches of ``(images, labels)`` for one epoch, from uint8 images kept on ``device``.

    Args:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` integer labels.
        batch_size: global batch size; each of ``world_size`` processes gets ``batch_size /
            world_size`` rows of it (``drop_last`` semantics: incomplete batches are skipped).
        device: where the images live and batches are produced.
        padding, flip: augmentation (``padding=0, flip=False``: none).
        rank, world_size: this process's share under torchrun.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        device: torch.device,
        padding: int = 0,
        flip: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(
                f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if batch_size % world_size:
            raise DataError(f"batch size {batch_size} is not divisible by {world_size} processes")
        if batch_size > len(images):
            raise DataError(f"batch size {batch_size} exceeds the {len(images)} training images")
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.padding = padding
        self.flip = flip
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def epoch(
        self, seed: int, epoch: int, stream: int = 0, steps: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of ``epoch``; ``steps`` cycles through fresh permutations if needed."""
        generator = epoch_generator(seed, epoch, stream)
        steps = len(self) if steps is None else steps
        per_rank = self.batch_size // self.world_size
        order = torch.empty(0, dtype=torch.long)
        for step in range(steps):
            start = (step * self.batch_size) % (len(self) * self.batch_size)
            if start == 0:
                order = torch.randperm(len(self.images), generator=generator)
            rows = order[start : start + self.batch_size].to(self.images.device)
            # Augment the global batch, then keep this process's share: every process draws
            # the same random numbers, so N processes see exactly the single-process batch.
            x = crop_flip(self.images[rows], self.padding, self.flip, generator)
            share = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
            yield x[share].float().div_(255), self.labels[rows[share]]
