"""Human-readable names of a benchmark's ID classes, for tables, figures and per-class json.

Sources, in order: the benchmark's own ``class_names`` (if it has them); Fashion-MNIST's ten
names (the ID subset of an open-set split, in label order); CIFAR-10's ten names; CIFAR-100's
``fine_label_names`` from ``cifar-100-python/meta`` under ``data_root`` (read with the same
array-only unpickler as the batches); ImageNet wnids (the dataset's own list, else the class
folder named in its image paths) mapped to their first WordNet lemma by
``LOC_synset_mapping.txt`` (Kaggle's ILSVRC layout) or ``words.txt`` under ``data_root`` when
present. Anything else, or a missing file, gives ``class 0``, ``class 1``, … — never an error.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CIFAR10_CLASSES", "class_names", "class_table", "wnid_names"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_WNID_FILES = ("LOC_synset_mapping.txt", "words.txt")
_WNID_FOLDER = re.compile(r"(?:^|/)(n\d{8})/")


def _fallback(num_classes: int) -> list[str]:
    return [f"class {i}" for i in range(num_classes)]


def _cifar100_names(data_root: Path | None) -> list[str] | None:
    if data_root is None or not (data_root / "cifar-100-python" / "meta").is_file():
        return None
    from oodlab.data.datasets.cifar import _RestrictedUnpickler

    raw = (data_root / "cifar-100-python" / "meta").read_bytes()
    try:
        meta = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception:
        return None
    names = meta.get(b"fine_label_names") or meta.get("fine_label_names")
    if not isinstance(names, list) or len(names) != 100:
        return None
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def wnid_names(wnids: Sequence[str], data_root: str | Path | None) -> list[str]:
    """Each wnid's first lemma from a mapping file under ``data_root``; the wnid itself when
    no file is present or the wnid is not in it."""
    mapping: dict[str, str] = {}
    for name in _WNID_FILES if data_root is not None else ():
        path = Path(data_root) / name  # type: ignore[arg-type]
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                match = re.match(r"(n\d{8})\s+(.+)", line.strip())
                if match:
                    mapping.setdefault(match.group(1), match.group(2).split(",")[0].strip())
            break
    return [mapping.get(w, w) for w in wnids]


def _wnids_of(dataset: Any) -> list[str] | None:
    """The wnid of each label of an ImageNet-style dataset: its own ``wnids``/``classes`` list,
    else the ``n########`` folder in the paths of its images (ImageFolder trees and the
    ImageNet-LT / ImageNet-100 image lists both name the class folder); ``None`` when a label
    has no such folder or two folders."""
    while hasattr(dataset, "dataset") and not hasattr(dataset, "paths"):
        dataset = dataset.dataset  # a Subset (e.g. the long-tail subsample) of the reader
    for attribute in ("wnids", "classes"):
        values = getattr(dataset, attribute, None)
        if (
            isinstance(values, list | tuple)
            and values
            and all(isinstance(v, str) and re.fullmatch(r"n\d{8}", v) for v in values)
        ):
            return list(values)
    paths, targets = getattr(dataset, "paths", None), getattr(dataset, "targets", None)
    if paths is None or targets is None or len(paths) != len(targets) or not len(paths):
        return None
    by_label: dict[int, str] = {}
    for path, label in zip(paths, (int(t) for t in targets), strict=True):
        folders = _WNID_FOLDER.findall(str(path))
        if not folders or by_label.setdefault(label, folders[-1]) != folders[-1]:
            return None
    if sorted(by_label) != list(range(len(by_label))):
        return None
    return [by_label[c] for c in range(len(by_label))]


def class_names(benchmark: Any, data_root: str | Path | None = None) -> list[str]:
    """The names of ``benchmark``'s ``num_classes`` ID classes, in label order (module doc);
    empty when the benchmark does not say how many classes it has."""
    if not isinstance(getattr(benchmark, "num_classes", None), int):
        return []
    num_classes = int(benchmark.num_classes)
    own = getattr(benchmark, "class_names", None)
    if own and len(own) == num_classes:
        return [str(n) for n in own]
    name = str(getattr(benchmark, "name", ""))
    root = Path(data_root) if data_root is not None else None
    names: list[str] | None = None
    if name.startswith("fmnist"):
        from oodlab.data.datasets.idx import CLASSES

        held_out = set(getattr(benchmark, "info", {}).get("held_out_classes", []))
        names = [CLASSES[c] for c in range(10) if c not in held_out]
    elif name.startswith("cifar100"):
        names = _cifar100_names(root)
    elif name.startswith("cifar10"):
        names = list(CIFAR10_CLASSES)
    else:
        wnids = _wnids_of(getattr(benchmark, "train", None))
        if wnids is not None:
            names = wnid_names(wnids, root)
    if names is None or len(names) != num_classes:
        return _fallback(num_classes)
    return names


def class_table(
    num_classes: int,
    names: Sequence[str] | None = None,
    class_counts: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """One entry per ID class: ``index``, ``name``, ``train_count`` and ``shot`` (many /
    medium / few, spec/long_tailed.md §4.7) when the training counts are known."""
    from oodlab.eval.accuracy import shot_groups

    names = list(names) if names is not None and len(names) == num_classes else None
    shots: list[str | None] = [None] * num_classes
    if class_counts is not None and len(class_counts) == num_classes:
        for group, mask in shot_groups(list(class_counts)).items():
            for c in range(num_classes):
                if mask[c]:
                    shots[c] = group
    return [
        {
            "index": c,
            "name": names[c] if names is not None else f"class {c}",
            "train_count": int(class_counts[c]) if class_counts is not None else None,
            "shot": shots[c],
        }
        for c in range(num_classes)
    ]
