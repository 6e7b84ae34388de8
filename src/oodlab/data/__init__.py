"""Datasets (one file per on-disk format), long-tail construction, transforms and loaders.

Importing this package registers every dataset in :data:`DATASETS`.
"""

from oodlab.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

__all__ = ["DATASETS", "register_dataset"]
