"""Long-tailed subsampling of a balanced training set (Cao et al. 2019 profiles).

Class ``c`` of ``C`` keeps ``n_c = int(n_max · ρ^(c/(C−1)))`` images (exponential profile) or
``n_max`` / ``int(n_max · ρ)`` for the first / second half of the classes (step profile),
where ``ρ = n_min / n_max`` is the imbalance ratio (0.01 = "imbalance ratio 100"). PASCL,
ImOOD and PATT keep the *first* ``n_c`` images of each class in the original file order
(long_tailed.md §1.3, §4.1); a seeded random choice is available too. The kept indices are
returned so that every run can save the exact subsample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from oodlab.errors import ConfigError, DataError

Profile = Literal["exp", "step"]
Rule = Literal["first", "random"]


@dataclass(frozen=True)
class LongTail:
    """A long-tailed subsample: kept indices (ascending) and images per class."""

    indices: np.ndarray
    class_counts: list[int]

    @property
    def prior(self) -> np.ndarray:
        """Training class prior ``π_c = n_c / Σ_k n_k``."""
        counts = np.asarray(self.class_counts, dtype=np.float64)
        return counts / counts.sum()

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    def shot_groups(self) -> dict[str, np.ndarray]:
        """Boolean class masks ``many`` / ``medium`` / ``few`` (long_tailed.md §4.7), from
        :func:`oodlab.eval.metrics.shot_groups` on the class counts."""
        from oodlab.eval.metrics import shot_groups

        return shot_groups(self.class_counts)

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready record of the subsample (kept indices and class counts) for the run folder."""
        return {"indices": self.indices.tolist(), "class_counts": list(self.class_counts)}


def longtail_counts(
    n_max: int, num_classes: int, imbalance_ratio: float, profile: Profile = "exp"
) -> list[int]:
    """Images per class of the profile; class 0 is the head, class ``C − 1`` the tail."""
    if not 0 < imbalance_ratio <= 1:
        raise ConfigError(f"imbalance_ratio must be in (0, 1] (e.g. 0.01), got {imbalance_ratio}")
    if num_classes < 1 or n_max < 1:
        raise ConfigError(f"need n_max >= 1 and num_classes >= 1, got {n_max}, {num_classes}")
    if profile == "exp":
        span = max(num_classes - 1, 1)
        counts = [int(n_max * imbalance_ratio ** (c / span)) for c in range(num_classes)]
    elif profile == "step":
        half = num_classes // 2
        counts = [
            n_max if c < num_classes - half else int(n_max * imbalance_ratio)
            for c in range(num_classes)
        ]
    else:
        raise ConfigError(f"profile must be 'exp' or 'step', got {profile!r}")
    if min(counts) < 1:
        raise ConfigError(
            f"imbalance_ratio {imbalance_ratio} with n_max {n_max} leaves classes with 0 "
            f"images (the tail gets int({n_max} * {imbalance_ratio}) = {min(counts)}); raise "
            "imbalance_ratio or n_max"
        )
    return counts


def longtail_indices(
    targets: Sequence[int] | np.ndarray,
    imbalance_ratio: float,
    profile: Profile = "exp",
    n_max: int | None = None,
    rule: Rule = "first",
    seed: int = 0,
) -> LongTail:
    """Indices of a long-tailed subsample of a dataset with labels ``targets``.

    Args:
        targets: label of every image, in file order.
        imbalance_ratio: ``ρ = n_min / n_max``.
        profile: ``"exp"`` or ``"step"``.
        n_max: images of the head class; default: the smallest class size of ``targets``.
        rule: ``"first"`` keeps the first ``n_c`` images of class ``c`` in file order (PASCL);
            ``"random"`` draws them with ``seed``.
        seed: seed of the random rule.
    """
    if rule not in ("first", "random"):
        raise ConfigError(f"rule must be 'first' or 'random', got {rule!r}")
    labels = np.asarray(targets, dtype=np.int64)
    if labels.ndim != 1 or labels.size == 0 or labels.min() < 0:
        raise DataError("targets must be a non-empty 1-D array of class indices >= 0")
    num_classes = int(labels.max()) + 1
    available = np.bincount(labels, minlength=num_classes)
    n_max = int(available.min()) if n_max is None else n_max
    counts = longtail_counts(n_max, num_classes, imbalance_ratio, profile)
    if any(n > a for n, a in zip(counts, available)):
        raise DataError(
            f"the profile needs {counts} images per class but only {available.tolist()} exist"
        )
    rng = np.random.default_rng(seed)
    kept = []
    for c, n in enumerate(counts):
        members = np.flatnonzero(labels == c)
        kept.append(members[:n] if rule == "first" else rng.choice(members, n, replace=False))
    return LongTail(indices=np.sort(np.concatenate(kept)), class_counts=counts)
