"""Datasets (one file per on-disk format), long-tail construction, transforms and loaders.

Importing this package registers every dataset in :data:`DATASETS` and every benchmark
preset in :data:`BENCHMARKS`.
"""

from oodlab.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

# The registries above must exist before these imports. These modules register the presets
# (paper_benchmarks: cifar*_lt, imagenet_lt; the others: ASCOOD / NPOS / MOS).
from oodlab.data import (  # noqa: E402
    imagenet_benchmarks,
    openood_benchmarks,
    paper_benchmarks,
    synthesis_benchmarks,
)
from oodlab.data.benchmarks import (  # noqa: E402  (the registries above must exist first)
    BENCHMARKS,
    Benchmark,
    TensorImageDataset,
    build_benchmark,
    register_benchmark,
)
from oodlab.data.datasets import (  # noqa: E402
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

_modules = [
    paper_benchmarks,
    synthesis_benchmarks,
    openood_benchmarks,
    imagenet_benchmarks,
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

from oodlab.data.loaders import DeviceBatchLoader, EpochLoader, IdAuxLoader  # noqa: E402
from oodlab.data.longtail import LongTail, longtail_counts, longtail_indices  # noqa: E402
from oodlab.data.samplers import ClassBalancedSampler, EpochSampler  # noqa: E402
from oodlab.data.transforms import (  # noqa: E402
    TRANSFORM_PRESETS,
    ColorJitterLite,
    MultiView,
    build_transform,
)

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
