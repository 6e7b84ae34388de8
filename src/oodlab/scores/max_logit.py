"""MaxLogit: the largest logit, negated so that higher = more OOD."""

from __future__ import annotations

from torch import Tensor

from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs


def max_logit(logits: Tensor) -> Tensor:
    """``-max_c f_c(x)`` for logits ``(N, C)``; higher = more OOD.

    Reference:
        Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song, "Scaling
        Out-of-Distribution Detection for Real-World Settings", ICML 2022, arXiv:1911.11132,
        Sec. 4 (MaxLogit). The paper's score is the max logit (higher = more ID); negated here.
    """
    return -logits.float().amax(dim=1)


@register_score(
    "max_logit", needs=("logits",), paper="Hendrycks et al., ICML 2022, arXiv:1911.11132"
)
class MaxLogit(Score):
    """Maximum logit (negated): :func:`max_logit`."""

    def score(self, outputs: Outputs) -> Tensor:
        return max_logit(outputs.logits)
