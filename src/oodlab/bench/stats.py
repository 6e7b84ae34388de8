"""Seed statistics of a bench: mean ± std over seeds, paired differences, noise verdicts.

Every summary cell is a *stat*: ``{"mean", "std", "n", "values", "seeds"}`` with the per-seed
values in seed order (population std over seeds, as OpenOOD prints it). Two rows of the same
bench were trained on the same seeds (same long-tail subsample, same initialisation seed), so
they are compared **paired**: the per-seed differences ``d_s = a_s − b_s`` and their mean ±
sample std (``ddof=1``: with 3 seeds the population std would understate the spread).

Noise rule (stated in every report): a difference is *within noise* when
``|mean(d)| ≤ std(d)``, i.e. a paired t statistic ``|t| ≤ √n`` (1.73 for 3 seeds: a lenient
rule; a difference that passes it is still not significant at the 5% level). With one seed
there is no seed spread; the rule then uses the per-run 95% bootstrap intervals
(:mod:`oodlab.eval.bootstrap`): within noise when ``|d|`` is below the larger half-width of
the two rows' intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Verdict = Literal["better", "worse", "within noise"]
LOWER_IS_BETTER = ("fpr95", "fpr95_id", "fpr95_closest")
NOISE_RULE = (
    "paired over seeds: within noise when |mean of the per-seed differences| <= their sample "
    "std (one seed: when |difference| <= the larger half-width of the two 95% bootstrap "
    "intervals)"
)

__all__ = [
    "LOWER_IS_BETTER",
    "NOISE_RULE",
    "lower_is_better",
    "mean_std",
    "paired_difference",
    "ranking",
]


def lower_is_better(key: str) -> bool:
    """Whether a summary key (``all.fpr95``, ``near.auroc``, ``few_acc``) is better when lower."""
    return key.rsplit(".", 1)[-1] in LOWER_IS_BETTER


def mean_std(
    values: Sequence[float],
    seeds: Sequence[int] | None = None,
    intervals: Sequence[Sequence[float]] | None = None,
) -> dict[str, Any]:
    """A stat: mean and population std over seeds, the per-seed values and seeds; with
    per-run bootstrap ``intervals`` also ``ci`` (the per-seed intervals' mean bounds)."""
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    stat: dict[str, Any] = {
        "mean": float(np.mean(finite)) if finite.size else float("nan"),
        "std": float(np.std(finite)) if finite.size else float("nan"),
        "n": int(finite.size),
        "values": [float(v) for v in array],
        "seeds": list(seeds) if seeds is not None else list(range(array.size)),
    }
    if intervals:
        bounds = np.asarray(intervals, dtype=float)
        stat["ci"] = [float(bounds[:, 0].mean()), float(bounds[:, 1].mean())]
    return stat


def paired_difference(
    a: dict[str, Any], b: dict[str, Any], key: str = "all.auroc"
) -> dict[str, Any]:
    """``a − b`` paired over their shared seeds, oriented so that ``better`` means ``a`` is
    better on ``key``; with the verdict of the noise rule (module doc).

    Returns ``{"mean", "std", "n", "seeds", "values", "verdict", "rule"}``; ``std`` is the
    sample std of the per-seed differences (0 for one seed); the verdict is ``"better"``,
    ``"worse"`` or ``"within noise"``; ``"no shared seed"`` when the rows share none.
    """
    va = dict(zip(a.get("seeds", []), a.get("values", [])))
    vb = dict(zip(b.get("seeds", []), b.get("values", [])))
    shared = [s for s in va if s in vb and math.isfinite(va[s]) and math.isfinite(vb[s])]
    if not shared:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "n": 0,
            "seeds": [],
            "values": [],
            "verdict": "no shared seed",
            "rule": NOISE_RULE,
        }
    d = np.array([va[s] - vb[s] for s in shared], dtype=float)
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if d.size > 1 else 0.0
    if d.size > 1:
        noise = std
    else:
        widths = [(s["ci"][1] - s["ci"][0]) / 2 for s in (a, b) if "ci" in s]
        noise = max(widths) if widths else 0.0
    sign = -1.0 if lower_is_better(key) else 1.0
    verdict: Verdict
    if abs(mean) <= noise:
        verdict = "within noise"
    else:
        verdict = "better" if sign * mean > 0 else "worse"
    return {
        "mean": mean,
        "std": std,
        "n": int(d.size),
        "seeds": shared,
        "values": [float(v) for v in d],
        "verdict": verdict,
        "rule": NOISE_RULE,
    }


def ranking(
    rows: Sequence[dict[str, Any]], key: str = "all.auroc", also: Sequence[str] = ("all.fpr95",)
) -> list[dict[str, Any]]:
    """``rows`` ranked by the mean of ``key`` (best first), each with the paired difference to
    the row ranked just above it on ``key`` and on ``also``; ``tied_with_above`` marks a
    ranking step that is within noise on ``key``."""
    usable = [r for r in rows if key in r and math.isfinite(r[key]["mean"])]
    order = sorted(usable, key=lambda r: r[key]["mean"], reverse=not lower_is_better(key))
    ranked = []
    for i, row in enumerate(order):
        entry: dict[str, Any] = {
            "rank": i + 1,
            "method": row["method"],
            "score": row["score"],
            key: row[key]["mean"],
        }
        if i > 0:
            above = order[i - 1]
            steps = {k: paired_difference(above[k], row[k], k) for k in (key, *also) if k in row}
            entry["step"] = steps
            entry["tied_with_above"] = steps[key]["verdict"] == "within noise"
        ranked.append(entry)
    return ranked
