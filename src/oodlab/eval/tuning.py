"""Tuning score hyper-parameters on a validation split (from the cache where possible).

Scores with a ``search_space`` are tuned from the cache; scores that need input gradients
(ODIN, i-ODIN, the Mahalanobis ensemble) are tuned the same way with one network pass over the
two validation sets per candidate (:func:`tune_input_score`). Selection rule (OpenOOD v1.5's
APS): the candidate with the highest AUROC on a validation pair — a seeded ``val_fraction``
of the ID test set, which is then removed from the ID test set, against the OOD validation
set (``TuneConfig.ood_val`` — ``oodlab eval --tune`` passes the benchmark's ``ood_val`` —
else the auxiliary outliers; never one of the OOD test sets); ties go to the earlier candidate
in grid order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from oodlab.errors import ConfigError, DataError
from oodlab.eval import metrics
from oodlab.scores import SCORES, Score
from oodlab.types import Outputs

TUNING_RULE = (
    "highest AUROC on (ID validation = {:.0%} of the ID test set, seeded and removed from the "
    "test set) vs the OOD validation set ({}); ties go to the earlier candidate in grid order"
)


@dataclass(frozen=True)
class TuneConfig:
    """Tuning of score hyper-parameters on a validation split, from cached outputs.

    Attributes:
        val_fraction: fraction of the ID test set held out as ID validation (seeded).
        seed: seed of that split.
        ood_val: the OOD validation set (e.g. a benchmark's ``ood_val``); ``None`` uses the
            auxiliary outliers.
    """

    val_fraction: float = 0.1
    seed: int = 0
    ood_val: Dataset[Any] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def split_id_test(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded (test, validation) indices of an ID test set of ``n``; ``fraction`` held out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, math.floor(n * fraction))
    if n_val >= n:
        raise DataError(
            f"the ID test set ({n} samples) is too small to hold out a validation split"
        )
    return order[n_val:].sort().values, order[:n_val].sort().values


def fit_score(score: Score, name: str, train: Outputs | None, aux: Outputs | None) -> Score:
    """``score`` fitted on the training (and auxiliary) outputs when it needs fitting."""
    if name in SCORES and SCORES.get(name).requires_fit and train is None:
        raise DataError(f"score {name!r} must be fitted on the ID training set; pass train=...")
    return score.fit(train, aux=aux) if train is not None else score


def tune_score(
    score: Score,
    name: str,
    train: Outputs | None,
    aux: Outputs | None,
    id_val: Outputs,
    ood_val: Outputs,
) -> tuple[Score, dict[str, Any]]:
    """``score`` with the grid point of best validation AUROC, and every trial."""
    grid = score.grid(train)
    keys = list(grid)
    candidates = [dict(zip(keys, values)) for values in itertools.product(*grid.values())]
    trials = []
    for params in candidates:
        candidate = fit_score(score.with_params(**params), name, train, aux)
        auroc = metrics.auroc(candidate.score(id_val), candidate.score(ood_val))
        trials.append({"params": params, "val_auroc": auroc})
    best = max(range(len(trials)), key=lambda i: (trials[i]["val_auroc"], -i))
    return score.with_params(**candidates[best]), {"selected": candidates[best], "trials": trials}


def tune_input_score(
    score: Score,
    name: str,
    run: Callable[[Score, Any], Tensor],
    id_val: Any,
    ood_val: Any,
    quiet: bool = False,
) -> tuple[Score, dict[str, Any]]:
    """``score`` (an input-gradient score, already fitted if it needs it) with the grid point
    of best validation AUROC, and every trial: the same rule as :func:`tune_score`.

    ``run(candidate, dataset)`` scores a dataset with a candidate (one network pass). The
    candidates share the fitted state of ``score`` (:meth:`Score.state_dict`; the grids
    change only how inputs are perturbed, not what is fitted).
    """
    grid = score.grid(None)
    keys = list(grid)
    candidates = [dict(zip(keys, values)) for values in itertools.product(*grid.values())]
    state = score.state_dict()

    def build(params: dict[str, Any]) -> Score:
        candidate = score.with_params(**params)
        return candidate.load_state_dict(state) if state else candidate

    trials = []
    desc = f"tuning {name}: {len(candidates)} candidates, one network pass each"
    for params in tqdm(candidates, desc=desc, disable=quiet, leave=False):
        candidate = build(params)
        auroc = metrics.auroc(run(candidate, id_val), run(candidate, ood_val))
        trials.append({"params": params, "val_auroc": auroc})
    best = max(range(len(trials)), key=lambda i: (trials[i]["val_auroc"], -i))
    return build(candidates[best]), {"selected": candidates[best], "trials": trials}
