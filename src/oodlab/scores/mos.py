"""MOS group score: the smallest "others" probability over the groups of a group softmax."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs


def group_slices(group_sizes: Sequence[int]) -> list[slice]:
    """The logit slice of each group; index 0 of every slice is the group's "others" logit."""
    bounds = [0]
    for size in group_sizes:
        bounds.append(bounds[-1] + size)
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _check(logits: Tensor, group_sizes: Sequence[int]) -> None:
    if sum(group_sizes) != logits.shape[1]:
        raise DataError(
            f"group sizes {list(group_sizes)} add up to {sum(group_sizes)} logits, but the model "
            f"gives {logits.shape[1]}; pass the group sizes of the model's group-softmax head"
        )


def mos(logits: Tensor, group_sizes: Sequence[int]) -> Tensor:
    """``min_g softmax(ℓ^g)_others`` for concatenated group logits ``(N, Σ n_g+1)``.

    Reference:
        Huang & Li, "MOS: Towards Scaling Out-of-distribution Detection for Large Semantic
        Space", CVPR 2021, arXiv:2105.01879, Eq. 5. The paper's score is
        ``S = −min_g p^g_others`` (higher = more ID); oodlab returns ``min_g p^g_others``.
    """
    _check(logits, group_sizes)
    others = [torch.softmax(logits[:, s].double(), dim=1)[:, 0] for s in group_slices(group_sizes)]
    return torch.stack(others, dim=1).amin(dim=1).float()


def mos_predict(logits: Tensor, group_sizes: Sequence[int]) -> Tensor:
    """Flat class index ``(N,)``: the best non-"others" class of the most confident group.

    Classes are numbered group by group (group 0's classes first), so the flat index of
    class ``j ≥ 1`` of group ``g`` is ``Σ_{g'<g} (n_g' − 1) + j − 1`` (MOS §3.4, Eq. 4).
    """
    _check(logits, group_sizes)
    best_prob, best_class = [], []
    offset = 0
    for s, size in zip(group_slices(group_sizes), group_sizes):
        probs = torch.softmax(logits[:, s].double(), dim=1)[:, 1:]
        value, index = probs.max(dim=1)
        best_prob.append(value)
        best_class.append(index + offset)
        offset += size - 1
    group = torch.stack(best_prob, dim=1).argmax(dim=1)
    return torch.stack(best_class, dim=1).gather(1, group[:, None]).squeeze(1)


@register_score("mos", needs=("logits",), paper="Huang & Li, CVPR 2021, arXiv:2105.01879")
class MOS(Score):
    """MOS score on the logits of a group-softmax model (:func:`mos`).

    Args:
        group_sizes: logits per group, each including its "others" logit (so ≥ 2).
    """

    def __init__(self, group_sizes: Sequence[int] = (2,)) -> None:
        sizes = list(group_sizes)
        if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in sizes):
            raise ConfigError(
                f"group_sizes must be integers >= 2 (a group's classes plus 'others'), got {sizes}"
            )
        self.group_sizes = sizes

    def score(self, outputs: Outputs) -> Tensor:
        return mos(outputs.logits, self.group_sizes)
