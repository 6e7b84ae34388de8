"""Benchmark presets: the :class:`Benchmark` type and its registry (:mod:`.base`), one file per
family of presets.

Importing this package registers every preset in :data:`BENCHMARKS`: ``synthetic`` (generated,
for tests), ``fmnist`` (the offline CPU presets), ``paper`` (PASCL / ImOOD / PATT's CIFAR-LT and
ImageNet-LT), ``openood`` (ASCOOD's OpenOOD v1.5 CIFAR), ``synthesis`` (ASCOOD's spurious and
fine-grained sets) and ``imagenet`` (NPOS's ImageNet-100, MOS's ImageNet-1k).
"""

from oodlab.data.benchmarks import (
    embeddings,
    fmnist,
    imagenet,
    openood,
    paper,
    synthesis,
    synthetic,
)
from oodlab.data.benchmarks.base import BENCHMARKS, Benchmark, build_benchmark, register_benchmark
from oodlab.data.datasets.base import TensorImageDataset

__all__ = ["BENCHMARKS", "Benchmark", "TensorImageDataset", "build_benchmark", "register_benchmark"]

_modules = [embeddings, fmnist, imagenet, openood, paper, synthesis, synthetic]
