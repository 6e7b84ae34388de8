"""Datasets (one file per on-disk format), long-tail construction, transforms and loaders.

Importing this package registers every dataset in :data:`DATASETS` and every benchmark
preset in :data:`BENCHMARKS`.
"""

from oodlab.data import benchmarks  # registers every benchmark preset
from oodlab.data.benchmarks import BENCHMARKS, Benchmark, build_benchmark, register_benchmark
from oodlab.data.datasets import (
    ascood_lists,
    bundled,
    cifar,
    finegrained,
    folders,
    idx,
    image_lists,
    imagenet_folders,
    paper_lists,
    spurious,
    synthetic,
    tinyimages,
)
from oodlab.data.datasets.base import DATASETS, TensorImageDataset, register_dataset
from oodlab.data.loaders import DeviceBatchLoader, EpochLoader, IdAuxLoader
from oodlab.data.longtail import LongTail, longtail_counts, longtail_indices
from oodlab.data.samplers import ClassBalancedSampler, EpochSampler
from oodlab.data.transforms import (
    TRANSFORM_PRESETS,
    ColorJitterLite,
    MultiView,
    build_transform,
)

_modules = [
    benchmarks,
    ascood_lists,
    bundled,
    cifar,
    finegrained,
    folders,
    idx,
    image_lists,
    imagenet_folders,
    paper_lists,
    spurious,
    synthetic,
    tinyimages,
]

__all__ = [
    "BENCHMARKS",
    "DATASETS",
    "TRANSFORM_PRESETS",
    "Benchmark",
    "ClassBalancedSampler",
    "ColorJitterLite",
    "DeviceBatchLoader",
    "EpochLoader",
    "EpochSampler",
    "IdAuxLoader",
    "LongTail",
    "MultiView",
    "TensorImageDataset",
    "build_benchmark",
    "build_transform",
    "longtail_counts",
    "longtail_indices",
    "register_benchmark",
    "register_dataset",
]
