"""Bootstrap confidence intervals of AUROC and FPR95 for one evaluation (numpy, seeded).

For each replicate the ID test images and each OOD set's images are drawn with replacement
(the two sides separately, as in a two-sample bootstrap), every metric is recomputed, and the
interval is the percentile interval of the replicates (Efron & Tibshirani 1993, §13.3). A
replicate is a vector of integer draw counts per image; the metrics are computed from those
counts on the once-sorted scores, so no replicate sorts again (``B`` replicates of ``N`` scores
cost ``O(B·N)`` after one ``O(N log N)`` sort).

The resampling depends only on the seed, the set's name and its size, never on the score, so
every score of one evaluation sees the same replicates, and the ID draws are shared by all OOD
sets of a replicate: the group means (near / far / all) are bootstrapped as means of the
per-set replicates.

Metrics (OOD positive, scores higher = more OOD), matching :mod:`oodlab.eval.metrics` exactly
when every count is 1:

* ``auroc``: the Mann-Whitney probability that an OOD image scores above an ID image, ties
  counting one half (= ``roc_auc_score``);
* ``fpr95``: the fraction of ID flagged at the first ROC point (distinct thresholds from high
  to low) where 95% of OOD is flagged (OpenOOD's ``FPR@95``; ``metrics.fpr95``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oodlab.errors import ConfigError, DataError

__all__ = ["BootstrapConfig", "bootstrap_intervals", "weighted_auroc_fpr95"]

_FloatArray = np.ndarray


@dataclass(frozen=True)
class BootstrapConfig:
    """``samples`` replicates (0 turns the bootstrap off), ``seed``, and the interval ``level``."""

    samples: int = 1000
    seed: int = 0
    level: float = 0.95
    chunk: int = 100

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ConfigError(f"bootstrap samples must be >= 0, got {self.samples}")
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"bootstrap level must be in (0, 1), e.g. 0.95; got {self.level}")
        if self.chunk < 1:
            raise ConfigError(f"bootstrap chunk must be >= 1, got {self.chunk}")


def weighted_auroc_fpr95(
    id_scores: _FloatArray,
    ood_scores: _FloatArray,
    id_counts: _FloatArray,
    ood_counts: _FloatArray,
    tpr: float = 0.95,
) -> tuple[_FloatArray, _FloatArray]:
    """AUROC and FPR95 of ``B`` weighted copies of one (ID, OOD) pair.

    Args:
        id_scores: ``(N_id,)`` ID scores; ``ood_scores``: ``(N_ood,)`` OOD scores.
        id_counts: ``(B, N_id)`` non-negative weights (bootstrap draw counts) of the ID images;
            ``ood_counts``: ``(B, N_ood)``. All-ones rows give the plain metrics.
        tpr: the OOD recall of the FPR operating point.

    Returns:
        ``(auroc, fpr95)``, each ``(B,)``.
    """
    scores = np.concatenate([id_scores, ood_scores]).astype(np.float64)
    is_ood = np.r_[np.zeros(id_scores.size, bool), np.ones(ood_scores.size, bool)]
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    # the last position of each run of tied scores: one ROC point per distinct threshold
    last = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_scores.size - 1]
    weights = np.concatenate([id_counts, ood_counts], axis=1).astype(np.float64)[:, order]
    ood_sorted = is_ood[order]
    tp = np.cumsum(np.where(ood_sorted, weights, 0.0), axis=1)[:, last]
    fp = np.cumsum(np.where(ood_sorted, 0.0, weights), axis=1)[:, last]
    n_ood, n_id = tp[:, -1:], fp[:, -1:]
    d_tp = np.diff(tp, axis=1, prepend=0.0)
    d_fp = np.diff(fp, axis=1, prepend=0.0)
    # each OOD weight beats the ID weight strictly below it and ties with half of its own group
    auroc = np.sum(d_tp * (n_id - fp + 0.5 * d_fp), axis=1) / (n_id[:, 0] * n_ood[:, 0])
    first = np.argmax(tp / n_ood >= tpr, axis=1)
    fpr = fp[np.arange(fp.shape[0]), first] / n_id[:, 0]
    return auroc, fpr


def _stream_seed(seed: int, name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) ^ (seed * 0x9E3779B1 % (1 << 32))


def _draw_counts(size: int, replicates: int, rng: np.random.Generator) -> _FloatArray:
    """``(replicates, size)`` counts of ``size`` items drawn ``size`` times with replacement."""
    draws = rng.integers(0, size, (replicates, size)) + size * np.arange(replicates)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * size).reshape(replicates, size)


def bootstrap_intervals(
    id_scores: _FloatArray,
    ood_scores: Mapping[str, _FloatArray],
    groups: Mapping[str, Sequence[str]] | None = None,
    fake_ood: Mapping[str, _FloatArray] | None = None,
    config: BootstrapConfig | None = None,
) -> dict[str, Any]:
    """Percentile intervals of AUROC and FPR95 per OOD set and per group mean.

    Args:
        id_scores: ``(N_id,)`` ID test scores (higher = more OOD).
        ood_scores: per OOD set its ``(N,)`` scores.
        groups: group name -> the sets it averages (``near``, ``far``, ``all``); empty groups
            are left out. Default: ``all`` = every set.
        fake_ood: per OOD set, scores of its images that count as ID for that set (SC-OOD's
            fake OOD); they are resampled with the set's ID side.
        config: replicates, seed, level.

    Returns:
        ``{"per_set": {set: {"auroc": [lo, hi], "fpr95": [lo, hi]}}, "means": {group: ...},
        "samples", "seed", "level", "method"}`` with fractions in [0, 1].
    """
    config = config or BootstrapConfig()
    if config.samples == 0:
        raise ConfigError("bootstrap_intervals with samples=0: pass samples >= 1")
    id_array = np.asarray(id_scores, dtype=np.float64).ravel()
    sets = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in ood_scores.items()}
    fake = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in (fake_ood or {}).items()}
    for name, values in [("ID", id_array), *sets.items()]:
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise DataError(f"bootstrap: scores of {name} are empty or not finite")
    groups = {"all": list(sets)} if groups is None else {k: list(v) for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    unknown = sorted({n for names in groups.values() for n in names} - set(sets))
    if unknown:
        raise ConfigError(f"bootstrap groups name unknown OOD sets {unknown}; have {sorted(sets)}")
    rngs = {
        name: np.random.default_rng(_stream_seed(config.seed, name))
        for name in ["__id__", *sets, *(f"__fake__{k}" for k in fake)]
    }
    replicates: dict[str, dict[str, list[_FloatArray]]] = {
        k: {"auroc": [], "fpr95": []} for k in sets
    }
    done = 0
    while done < config.samples:
        b = min(config.chunk, config.samples - done)
        id_counts = _draw_counts(id_array.size, b, rngs["__id__"])
        for name, values in sets.items():
            side, counts = id_array, id_counts
            if name in fake and fake[name].size:
                side = np.concatenate([id_array, fake[name]])
                fake_counts = _draw_counts(fake[name].size, b, rngs[f"__fake__{name}"])
                counts = np.concatenate([id_counts, fake_counts], axis=1)
            auroc, fpr = weighted_auroc_fpr95(
                side, values, counts, _draw_counts(values.size, b, rngs[name])
            )
            replicates[name]["auroc"].append(auroc)
            replicates[name]["fpr95"].append(fpr)
        done += b
    stacked = {k: {m: np.concatenate(v) for m, v in r.items()} for k, r in replicates.items()}
    tail = 100 * (1 - config.level) / 2

    def interval(values: _FloatArray) -> list[float]:
        lo, hi = np.percentile(values, [tail, 100 - tail])
        return [float(lo), float(hi)]

    return {
        "method": "percentile bootstrap; ID and each OOD set resampled separately",
        "samples": config.samples,
        "seed": config.seed,
        "level": config.level,
        "per_set": {k: {m: interval(v) for m, v in r.items()} for k, r in stacked.items()},
        "means": {
            group: {
                m: interval(np.mean([stacked[n][m] for n in names], axis=0))
                for m in ("auroc", "fpr95")
            }
            for group, names in groups.items()
        },
    }
