"""Benchmarks: an ID train/test pair, auxiliary outliers and named OOD test sets.

A benchmark preset is registered in :data:`BENCHMARKS` as a function
``build(data_root, seed, **options) -> Benchmark``. Every dataset it returns yields
``(image, label)`` pairs; images are ``uint8`` or ``float`` tensors ``(C, H, W)``
after the dataset's transform, and labels are ``-1`` for OOD and auxiliary samples.
The presets live one family per file beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.options import check_call_options
from oodlab.registry import Registry

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
register_benchmark = BENCHMARKS.register


@dataclass
class Benchmark:
    """One OOD benchmark: what to train on, what to test on, and how the OOD sets group.

    Attributes:
        name: the preset name.
        num_classes: number of ID classes ``C``.
        image_shape: ``(C, H, W)`` of the model input.
        train: ID training set (long-tail subsample already applied), labels in ``[0, C)``.
        test: ID test set.
        ood: OOD test sets by name (labels ``-1``).
        aux: auxiliary outliers for OE-style training (labels ``-1``), or ``None``.
        ood_val: the OOD validation set for tuning score hyper-parameters (labels ``-1``;
            OpenOOD's ``val_*`` list of the benchmark, e.g. TIN val for CIFAR, OpenImage-O val
            for ASCOOD's 224/448 px sets), or ``None`` when it is not on disk. Never one of
            the OOD test sets; tuning falls back to ``aux`` without it.
        near: names of the near-OOD sets; ``far``: names of the far-OOD sets.
        class_counts: training images per class (the long-tail profile; gives the prior π).
        lt_indices: indices of the kept training images in the full training set, if subsampled.
        info: provenance and sizes, written beside every run.
        fake_ood: per OOD set, its images that belong semantically to an ID class (SC-OOD's
            ``sc_label ≥ 0``, labelled with that class). PASCL / ImOOD / PATT count them as ID
            when that set is evaluated: the ID side of set ``k`` is ``test`` + ``fake_ood[k]``.
    """

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    train: Dataset[Any]
    test: Dataset[Any]
    ood: dict[str, Dataset[Any]]
    aux: Dataset[Any] | None = None
    ood_val: Dataset[Any] | None = None
    near: tuple[str, ...] = ()
    far: tuple[str, ...] = ()
    class_counts: list[int] = field(default_factory=list)
    lt_indices: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    fake_ood: dict[str, Dataset[Any]] = field(default_factory=dict)

    @property
    def prior(self) -> Tensor:
        counts = torch.tensor(self.class_counts, dtype=torch.float64)
        return counts / counts.sum()


def build_benchmark(
    name: str, data_root: str | Path | None = None, seed: int = 0, **options: Any
) -> Benchmark:
    """Build the benchmark preset ``name`` (see ``oodlab list benchmarks``); options it does not
    take, or of the wrong type, raise one line naming the valid ones."""
    factory = BENCHMARKS.get(name).factory
    options = check_call_options(
        factory, options, f"data.options of benchmark {name!r}", skip=("data_root", "seed")
    )
    return factory(data_root=data_root, seed=seed, **options)
