"""Training loaders whose randomness is seeded and whose position can be saved and restored.

* :class:`EpochLoader`: a ``DataLoader`` over an :class:`~oodlab.data.samplers.EpochSampler`
  or :class:`~oodlab.data.samplers.ClassBalancedSampler`, with ``state_dict()``.
* :class:`DeviceBatchLoader`: in-memory uint8 images kept on the training device, augmented a
  whole batch at a time (crop + flip, optional jitter, several views); its state is the RNG
  state at the start of the epoch and the number of batches already served.
* :class:`IdAuxLoader`: an ID loader zipped with an endlessly cycling auxiliary-outlier loader
  (each ID step draws a fresh auxiliary batch; an epoch is the ID loader's length).

Resuming: ``loader.load_state_dict(saved)`` then iterating continues with the batch after the
last one served before saving. The device path replays every random draw exactly. The
``DataLoader`` path replays the sample order exactly; per-image augmentations come from the
worker processes, seeded per epoch from ``(seed, epoch)`` (with ``num_workers=0`` from torch's
global generator), so after a mid-epoch resume they differ from the uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from oodlab.data.batch_augment import ColorJitterLite, apply_crop_flip, draw_crop_flip
from oodlab.data.persistent import EpochSeeded, EpochTagged
from oodlab.data.samplers import ClassBalancedSampler, EpochSampler, _seeded, process_share
from oodlab.errors import ConfigError, DataError


class ResumableLoader(Protocol):
    """What :class:`IdAuxLoader` and the training loop need from a loader."""

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EpochLoader:
    """A ``DataLoader`` with a seeded, resumable sampler; ``state_dict()`` records where it is.

    Args:
        dataset: any map-style dataset.
        batch_size: images per batch in this process.
        shuffle: reshuffle every epoch (ignored with ``class_balanced``).
        seed: the run's seed; epoch ``e`` uses ``seed + e``.
        num_workers: worker processes of the ``DataLoader``.
        drop_last: skip the last incomplete batch (the papers' training loaders do).
        class_balanced: sample classes uniformly (needs ``dataset.targets``).
        persistent_workers: with ``num_workers > 0``, one ``DataLoader`` whose workers live
            across epochs and re-seed themselves per epoch (:mod:`oodlab.data.persistent`):
            the same batches as a fresh loader per epoch, without restarting the workers.
        **loader_options: further ``DataLoader`` arguments (``pin_memory``, ``collate_fn``, …).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = True,
        class_balanced: bool = False,
        persistent_workers: bool = False,
        **loader_options: Any,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler: EpochSampler | ClassBalancedSampler
        if class_balanced:
            targets = getattr(dataset, "targets", None)
            if targets is None:
                raise ConfigError("class_balanced sampling needs a dataset with .targets")
            self.sampler = ClassBalancedSampler(targets, seed=seed)
        else:
            self.sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.loader_options = loader_options
        self.persistent = persistent_workers and num_workers > 0
        self._persistent_loader: DataLoader[Any] | None = None
        self.epoch = 0
        self.batches_done = 0
        if len(self) == 0:
            raise DataError(
                f"{self.sampler.epoch_size} images give no batch of {batch_size} with drop_last; "
                "lower the batch size"
            )

    def __len__(self) -> int:
        n = self.sampler.epoch_size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batches_done = epoch, 0

    def __iter__(self) -> Iterator[Any]:
        total = len(self)
        self.sampler.set_epoch(self.epoch)
        self.sampler.start = self.batches_done * self.batch_size
        loader = self._persistent() if self.persistent else DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            generator=_seeded(self.seed, self.epoch, stream=1),
            **self.loader_options,
        )  # fmt: skip
        for batch in loader:
            self.batches_done += 1
            yield batch
            if self.batches_done >= total:
                break
        self.epoch += 1
        self.batches_done = 0
        self.sampler.start = 0

    def _persistent(self) -> DataLoader[Any]:
        if self._persistent_loader is None:
            self._persistent_loader = DataLoader(
                EpochSeeded(self.dataset, self.seed),
                batch_size=self.batch_size,
                sampler=EpochTagged(self.sampler, self),
                num_workers=self.num_workers,
                drop_last=self.drop_last,
                persistent_workers=True,
                generator=torch.Generator().manual_seed(0),  # not the global RNG; re-seeded
                **self.loader_options,
            )
        return self._persistent_loader

    def state_dict(self) -> dict[str, Any]:
        """``{"seed", "epoch", "batches_done"}``: enough to recompute the rest of the epoch."""
        return {"seed": self.seed, "epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ConfigError(f"state was saved with seed {state['seed']}, loader has {self.seed}")
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])


class DeviceBatchLoader:
    """Batches of in-memory uint8 images augmented on the device, resumable to the batch.

    The images live on ``device`` as one uint8 tensor. Each epoch draws a permutation, then for
    every batch and view the crop offsets, flips and (optionally) jitter factors, all from one
    CPU ``generator``; the selected images are gathered on the device, cropped, flipped,
    scaled to ``[0, 1]`` (then jittered and normalised if asked). Under torchrun each process
    augments its share of the global batch ``batch_size · world_size`` with the draws of the
    whole global batch, so N processes see exactly the single-process batches.

    Args:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` integer labels.
        batch_size: images per batch in this process.
        device: where the images are kept and the batches are made.
        crop_padding: zero padding of the random crop (0: no crop).
        flip: random horizontal flip.
        views: independently augmented views per image; ``> 1`` yields a tuple of views.
        generator: a CPU ``torch.Generator`` or an int seed (default seed 0).
        drop_last: skip the last incomplete batch.
        shuffle: a new permutation per epoch (else file order).
        color_jitter: optional :class:`~oodlab.data.batch_augment.ColorJitterLite`.
        normalize: optional ``(mean, std)`` per channel, applied last.
        rank, world_size: default: this process's share.

    Yields:
        ``(x, y)``: ``x`` float ``(B, C, H, W)`` (or a tuple of ``views`` of them), ``y`` labels.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | Sequence[int] | np.ndarray,
        batch_size: int,
        device: torch.device | str = "cpu",
        crop_padding: int = 0,
        flip: bool = False,
        views: int = 1,
        generator: torch.Generator | int | None = None,
        drop_last: bool = True,
        shuffle: bool = True,
        color_jitter: ColorJitterLite | None = None,
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(
                f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1 or views < 1 or crop_padding < 0:
            raise ConfigError(
                f"need batch_size >= 1, views >= 1, crop_padding >= 0; got {batch_size}, "
                f"{views}, {crop_padding}"
            )
        auto_rank, auto_world = process_share()
        self.rank = auto_rank if rank is None else rank
        self.world_size = auto_world if world_size is None else world_size
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.crop_padding = crop_padding
        self.flip = flip
        self.views = views
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.color_jitter = color_jitter
        self.normalize = None
        if normalize is not None:
            mean, std = (
                torch.tensor(v, dtype=torch.float32, device=self.device) for v in normalize
            )
            self.normalize = (mean[None, :, None, None], std[None, :, None, None])
        if isinstance(generator, torch.Generator):
            self.generator = generator
        else:
            self.generator = torch.Generator().manual_seed(0 if generator is None else generator)
        self.epoch = 0
        self._epoch_start: Tensor | None = None
        self._batches_done = 0
        self._resume_skip = 0
        if len(self) == 0:
            raise DataError(
                f"{len(images)} images give no batch of {self._global_batch} with drop_last; "
                "lower the batch size"
            )

    @classmethod
    def from_dataset(cls, dataset: Any, batch_size: int, **options: Any) -> DeviceBatchLoader:
        """From a :class:`~oodlab.data.TensorImageDataset` (its ``images`` and ``targets``)."""
        if not hasattr(dataset, "images") or not hasattr(dataset, "targets"):
            raise DataError(
                f"{type(dataset).__name__} is not held in memory (no .images / .targets); "
                "use EpochLoader for datasets decoded from files"
            )
        return cls(dataset.images, dataset.targets, batch_size, **options)

    @property
    def _global_batch(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        n = len(self.images)
        return n // self._global_batch if self.drop_last else math.ceil(n / self._global_batch)

    def _draw(self, batch: int) -> list[tuple[Any, Tensor | None]]:
        draws = []
        for _ in range(self.views):
            crop = draw_crop_flip(batch, self.crop_padding, self.flip, self.generator)
            jitter = self.color_jitter.draw(batch, self.generator) if self.color_jitter else None
            draws.append((crop, jitter))
        return draws

    def _make(self, x: Tensor, crop: Any, jitter: Tensor | None) -> Tensor:
        out = apply_crop_flip(x, self.crop_padding, crop).float().div_(255)
        if self.color_jitter is not None and jitter is not None:
            out = self.color_jitter.apply(out, jitter)
        if self.normalize is not None:
            out = (out - self.normalize[0]) / self.normalize[1]
        return out

    def __iter__(self) -> Iterator[tuple[Tensor | tuple[Tensor, ...], Tensor]]:
        if self._resume_skip == 0:
            self._epoch_start = self.generator.get_state()
        skip, self._resume_skip = self._resume_skip, 0
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for step in range(len(self)):
            rows = order[step * self._global_batch : (step + 1) * self._global_batch]
            draws = self._draw(len(rows))
            if step < skip:
                continue
            per_rank = math.ceil(len(rows) / self.world_size)
            share = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
            mine = rows[share].to(self.device)
            x = self.images[mine]
            made = tuple(self._make(x, crop.select(share), None if j is None else j[share])
                         for crop, j in draws)  # fmt: skip
            self._batches_done = step + 1
            yield (made[0] if self.views == 1 else made), self.labels[mine]
        self.epoch += 1
        self._batches_done = 0
        self._epoch_start = None

    def state_dict(self) -> dict[str, Any]:
        """The RNG state at the start of the current epoch, the batches served, the epoch."""
        start = self._epoch_start
        mid_epoch = start is not None and self._batches_done > 0
        return {
            "rng": (
                start if start is not None and mid_epoch else self.generator.get_state()
            ).clone(),
            "batches_done": self._batches_done if mid_epoch else 0,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the last batch served when ``state`` was saved."""
        self.generator.set_state(torch.as_tensor(state["rng"], dtype=torch.uint8))
        self._resume_skip = int(state["batches_done"])
        self._epoch_start = self.generator.get_state() if self._resume_skip else None
        self._batches_done = self._resume_skip
        self.epoch = int(state["epoch"])


class IdAuxLoader:
    """ID batches zipped with auxiliary-outlier batches from an endlessly cycling loader.

    An epoch has ``len(id_loader)`` steps; each step takes the next auxiliary batch, and the
    auxiliary loader starts its next epoch (a new permutation) whenever it runs out, so every
    outlier is seen before any is seen twice. Yields ``(id_batch, aux_batch)``.
    """

    def __init__(self, id_loader: ResumableLoader, aux_loader: ResumableLoader) -> None:
        if len(aux_loader) == 0:
            raise DataError("the auxiliary loader yields no batch; lower its batch size")
        self.id_loader = id_loader
        self.aux_loader = aux_loader
        self._aux: Iterator[Any] | None = None

    def __len__(self) -> int:
        return len(self.id_loader)

    def _next_aux(self) -> Any:
        for _ in range(2):
            if self._aux is None:
                self._aux = iter(self.aux_loader)
            try:
                return next(self._aux)
            except StopIteration:
                self._aux = None
        raise DataError("the auxiliary loader yields no batch")

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for id_batch in self.id_loader:
            yield id_batch, self._next_aux()

    def state_dict(self) -> dict[str, Any]:
        return {"id": self.id_loader.state_dict(), "aux": self.aux_loader.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.id_loader.load_state_dict(state["id"])
        self.aux_loader.load_state_dict(state["aux"])
        self._aux = None
