"""Datasets (one file per on-disk format), long-tail construction, transforms and loaders.

Importing this package registers every dataset in :data:`DATASETS` and every benchmark
preset in :data:`BENCHMARKS`.
"""

from oodlab.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

from oodlab.data.benchmarks import (  # noqa: E402  (the registries above must exist first)
    BENCHMARKS,
    Benchmark,
    TensorImageDataset,
    build_benchmark,
    register_benchmark,
)
from oodlab.data.datasets import bundled, cifar, idx, image_lists, tinyimages  # noqa: E402

_modules = [bundled, cifar, idx, image_lists, tinyimages]

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "Benchmark",
    "TensorImageDataset",
    "build_benchmark",
    "register_benchmark",
    "register_dataset",
]
