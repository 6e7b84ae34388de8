"""The ``embeddings`` preset: stored embeddings (any extractor, e.g. CLIP) as a benchmark.

The files are ``.npy`` / ``.pt`` (:mod:`oodlab.synthesis.feature_data`): training features
``(N, D)`` and labels ``(N,)``, the class (text) embeddings ``(C, D_out)`` that give the class
count, and optionally the ID test split and OOD sets. Every sample is a ``(D,)`` vector, so a
model over embeddings (``feature_tail``) trains on it in the one loop like on images
(``image_shape`` is ``(D, 1, 1)``: ``D`` values, not an image). ``info["input_files"]`` records
the path and SHA-256 of every file, ``info["training_files"]`` those of the training files, which
a resumed run refuses to find changed (:func:`oodlab.train.guards.check_resumable`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from oodlab.data.benchmarks.base import Benchmark, register_benchmark
from oodlab.errors import DataError
from oodlab.io import sha256_file

#: Files a resumed run must find unchanged (their SHA-256 is in the run's meta.json).
TRAINING_FILES = ("train_features", "train_labels", "class_embeddings")


def input_files(paths: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """Path and SHA-256 of every given file (a missing one raises one line)."""
    records = {}
    for key, path in paths.items():
        if path is None:
            continue
        if not Path(path).is_file():
            raise DataError(
                f"data.options.{key} file {path} does not exist; pass an existing .npy or .pt"
            )
        records[key] = {"path": str(path), "sha256": sha256_file(path)}
    return records


@register_benchmark("embeddings", paper="stored embeddings, e.g. NPOS's CLIP pipeline (2303.02966)")
def embeddings(
    data_root: str | Path | None = None,
    seed: int = 0,
    train_features: str = "",
    train_labels: str = "",
    class_embeddings: str = "",
    test_features: str | None = None,
    test_labels: str | None = None,
    ood_features: dict[str, str] | None = None,
) -> Benchmark:
    """Embedding files as a benchmark: train, test (empty when not given) and far-OOD sets."""
    from oodlab.synthesis.feature_data import load_features, load_labels

    for key, value in (("train_features", train_features), ("train_labels", train_labels)):
        if not value:
            raise DataError(f"data.options.{key} is required (a .npy or .pt path)")
    if not class_embeddings:
        raise DataError("data.options.class_embeddings is required (a .npy or .pt path)")
    ood_paths = dict(sorted((ood_features or {}).items()))
    records = input_files(
        {
            "train_features": train_features,
            "train_labels": train_labels,
            "class_embeddings": class_embeddings,
            "test_features": test_features,
            "test_labels": test_labels,
            **{f"ood_features.{name}": path for name, path in ood_paths.items()},
        }
    )
    text = load_features(class_embeddings, "class embeddings")
    x = load_features(train_features, "training features")
    dim, classes = x.shape[1], len(text)
    y = load_labels(train_labels, "training labels", len(x), classes)
    if test_features is not None and test_labels is not None:
        xt = load_features(test_features, "test features", dim)
        test = TensorDataset(xt, load_labels(test_labels, "test labels", len(xt), classes))
    else:
        test = TensorDataset(torch.zeros(0, dim), torch.zeros(0, dtype=torch.long))
    ood: dict[str, Dataset[Any]] = {}
    for name, path in ood_paths.items():
        xo = load_features(path, f"OOD set {name!r}", dim)
        ood[name] = TensorDataset(xo, torch.full((len(xo),), -1))
    return Benchmark(
        name="embeddings",
        num_classes=classes,
        image_shape=(dim, 1, 1),
        train=TensorDataset(x, y),
        test=test,
        ood=ood,
        far=tuple(ood),
        class_counts=torch.bincount(y, minlength=classes).tolist(),
        info={
            "source": "embedding files",
            "input_files": records,
            "training_files": {k: records[k] for k in TRAINING_FILES},
            "seed": seed,
        },
    )
