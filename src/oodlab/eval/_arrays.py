"""Array conventions shared by the metric modules: what they accept, how it is read and
checked (one-line errors for degenerate input)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from oodlab.errors import ConfigError, DataError

Scores = ArrayLike | torch.Tensor
"""What the metric functions accept: a 1-D numpy array, a sequence, or a torch tensor."""

AuprMethod = Literal["ap", "trapezoid"]
FprRule = Literal["first", "closest"]

_FloatArray = NDArray[np.float64]
_IntArray = NDArray[np.int64]
_BoolArray = NDArray[np.bool_]


def _to_numpy(values: Scores) -> NDArray[np.generic]:
    if isinstance(values, torch.Tensor):
        tensor = values.detach().cpu()
        if tensor.is_floating_point() or tensor.is_complex():
            tensor = tensor.double()
        return np.asarray(tensor.numpy())
    return np.asarray(values)


def _scores(values: Scores, name: str) -> _FloatArray:
    """``values`` as a finite, non-empty, 1-D float64 array; ``name`` goes into the message."""
    raw = _to_numpy(values)
    if raw.ndim != 1:
        raise DataError(
            f"{name} must be a 1-D array with one score per sample, got shape {raw.shape}; "
            "flatten or squeeze the score tensor"
        )
    if raw.size == 0:
        raise DataError(
            f"{name} is empty; every OOD metric needs at least one ID and one OOD score"
        )
    try:
        array = raw.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be numbers, got dtype {raw.dtype}") from error
    finite = np.isfinite(array)
    if not finite.all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise DataError(
            f"{name} hold {n_nan} NaN and {n_inf} infinite values among {array.size} scores; "
            "check the model outputs and the score's hyper-parameters (e.g. a temperature of 0)"
        )
    return array


def _pair(id_scores: Scores, ood_scores: Scores) -> tuple[_FloatArray, _FloatArray]:
    return _scores(id_scores, "ID scores"), _scores(ood_scores, "OOD scores")


def _labelled(id_array: _FloatArray, ood_array: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
    """Pooled scores and labels, 1 = OOD (the positive class), 0 = ID."""
    labels = np.concatenate([np.zeros(id_array.size), np.ones(ood_array.size)])
    return np.concatenate([id_array, ood_array]), labels


def _check_method(method: str) -> None:
    if method not in ("ap", "trapezoid"):
        raise ConfigError(f"AUPR method must be 'ap' or 'trapezoid', got {method!r}")


def _check_rule(rule: str) -> None:
    if rule not in ("first", "closest"):
        raise ConfigError(f"FPR rule must be 'first' or 'closest', got {rule!r}")


def _check_tpr(tpr: float) -> None:
    if not 0.0 < tpr <= 1.0:
        raise ConfigError(f"tpr must be a recall level in (0, 1], got {tpr!r}; e.g. 0.95")
