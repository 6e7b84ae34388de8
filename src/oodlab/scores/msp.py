"""MSP: the maximum softmax probability, negated so that higher = more OOD."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs


def msp(logits: Tensor) -> Tensor:
    """``-max_c softmax(f(x))_c`` for logits ``(N, C)``; higher = more OOD.

    Reference:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
        Examples in Neural Networks", ICLR 2017, arXiv:1610.02136, Sec. 2. The paper's score
        is the maximum softmax probability (higher = more ID); it is negated here.
    """
    return -torch.softmax(logits.float(), dim=1).amax(dim=1)


@register_score("msp", needs=("logits",), paper="Hendrycks & Gimpel, ICLR 2017, arXiv:1610.02136")
class MSP(Score):
    """Maximum softmax probability (negated): :func:`msp`."""

    def score(self, outputs: Outputs) -> Tensor:
        return msp(outputs.logits)
