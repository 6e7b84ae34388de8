"""Array conventions shared by the metric modules: what they accept and how it is read."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

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
