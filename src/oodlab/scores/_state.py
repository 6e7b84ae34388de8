"""A score's fitted state as plain tensors and scalars, and back (no pickled objects).

:meth:`oodlab.scores.base.Score.state_dict` walks the trailing-underscore attributes that
``fit`` set and flattens them into one ``{key: tensor | scalar}`` mapping:

* a tensor (or NumPy array, stored as a tensor) under its own name, ``"precision_"``;
* ``bool``, ``int``, ``float``, ``str`` and ``None`` as they are, ``"k_": 50``;
* a list or tuple as ``"means_.__len__"`` plus one key per element, ``"means_.0"``, ...;
* a fitted score inside a score (``ada_maha`` holds a ``Mahalanobis``) as
  ``"mahalanobis_.__score__"`` (its registered name), ``"mahalanobis_.__params__"`` (its
  hyper-parameters as JSON) and its own state under the prefix ``"mahalanobis_."``.

Attributes a score can rebuild from the others (the faiss index of ``knn``) are listed in
``Score.derived_state`` and skipped; ``Score.rebuild_state`` recreates them after loading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from torch import Tensor

from oodlab.errors import DataError

if TYPE_CHECKING:
    from oodlab.scores.base import Score

StateValue = Union[Tensor, bool, int, float, str, None]  # noqa: UP007 (a runtime alias)
PLAIN = (bool, int, float, str, type(None))
LEN, SCORE, PARAMS = "__len__", "__score__", "__params__"


def plain_params(score: Score) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A score's hyper-parameters split into JSON-able values and tensors (one line if neither)."""
    plain: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for name, value in score.get_params().items():
        if isinstance(value, Tensor):
            tensors[name] = value.detach().cpu().contiguous()
            continue
        value = list(value) if isinstance(value, tuple) else value
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise DataError(
                f"{type(score).__name__} hyper-parameter {name}={value!r} is neither a tensor "
                "nor plain data (numbers, strings, lists); pass it as one of those to save it"
            ) from None
        plain[name] = value
    return plain, tensors


def flatten_state(score: Score) -> dict[str, StateValue]:
    """The fitted state of ``score`` (see the module docstring)."""
    state: dict[str, StateValue] = {}
    for name, value in sorted(vars(score).items()):
        if name.endswith("_") and not name.startswith("_") and name not in score.derived_state:
            _flatten(name, value, state, score)
    return state


def _flatten(key: str, value: Any, state: dict[str, StateValue], owner: Score) -> None:
    from oodlab.scores.base import Score, score_name

    if isinstance(value, Tensor):
        state[key] = value.detach().cpu().contiguous()
    elif isinstance(value, np.ndarray):
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    elif isinstance(value, PLAIN):
        state[key] = value
    elif isinstance(value, list | tuple):
        state[f"{key}.{LEN}"] = len(value)
        for i, item in enumerate(value):
            _flatten(f"{key}.{i}", item, state, owner)
    elif isinstance(value, Score):
        params, tensors = plain_params(value)
        if tensors:
            raise DataError(f"{key}: a nested score with tensor hyper-parameters is not exportable")
        state[f"{key}.{SCORE}"] = score_name(value)
        state[f"{key}.{PARAMS}"] = json.dumps(params)
        for sub_key, sub_value in value.state_dict().items():
            state[f"{key}.{sub_key}"] = sub_value
    else:
        raise DataError(
            f"{type(owner).__name__}.{key} is a {type(value).__name__}, which cannot be exported "
            "as tensors; list it in derived_state and rebuild it in rebuild_state"
        )


def unflatten_state(state: Mapping[str, StateValue]) -> dict[str, Any]:
    """Attribute values from a :func:`flatten_state` mapping (lists and nested scores rebuilt)."""
    heads = sorted({key.split(".", 1)[0] for key in state})
    return {head: _value(head, state) for head in heads}


def _value(key: str, state: Mapping[str, StateValue]) -> Any:
    from oodlab.scores.base import SCORES

    if key in state:
        return state[key]
    length = state.get(f"{key}.{LEN}")
    if isinstance(length, int):
        return [_value(f"{key}.{i}", state) for i in range(length)]
    name = state.get(f"{key}.{SCORE}")
    if isinstance(name, str):
        params = json.loads(str(state.get(f"{key}.{PARAMS}", "{}")))
        prefix = f"{key}."
        inner = {
            k[len(prefix) :]: v
            for k, v in state.items()
            if k.startswith(prefix) and k[len(prefix) :] not in (SCORE, PARAMS)
        }
        return SCORES.create(name, **params).load_state_dict(inner)
    raise DataError(f"fitted state has no value for {key!r}; the file is incomplete or corrupted")
