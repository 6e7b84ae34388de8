"""MOS group score: the smallest "others" probability over the groups of a group softmax."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs


def _size_problem(group_sizes: Sequence[int]) -> str | None:
    """Why ``group_sizes`` is invalid, or ``None`` if it is a non-empty list of ints ≥ 2."""
    if isinstance(group_sizes, str | bytes) or not isinstance(group_sizes, Sequence):
        return f"group_sizes must be a sequence of integers, got {group_sizes!r}"
    sizes = list(group_sizes)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in sizes):
        return (
            f"group_sizes must be integers >= 2 (each group's classes plus its 'others' "
            f"logit), got {sizes}"
        )
    return None


def group_slices(group_sizes: Sequence[int]) -> list[slice]:
    """The logit slice of each group, in order; index 0 of every slice is its "others" logit."""
    problem = _size_problem(group_sizes)
    if problem is not None:
        raise DataError(problem)
    bounds = [0, *itertools.accumulate(group_sizes)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _group_softmaxes(logits: Tensor, group_sizes: Sequence[int]) -> list[Tensor]:
    slices = group_slices(group_sizes)
    if logits.ndim != 2 or slices[-1].stop != logits.shape[1]:
        raise DataError(
            f"group sizes {list(group_sizes)} add up to {slices[-1].stop} logits, but the "
            f"logits have shape {tuple(logits.shape)}; pass the group sizes of the model's "
            "group-softmax head"
        )
    return [torch.softmax(logits[:, s].double(), dim=1) for s in slices]


def mos(logits: Tensor, group_sizes: Sequence[int]) -> Tensor:
    """``min_g softmax(ℓ^g)_others`` for concatenated group logits ``(N, Σ_g n_g)``; higher = OOD.

    ``ℓ^g`` is the slice of group ``g`` (``n_g`` logits: "others" first, then the group's
    ``n_g − 1`` classes). An ID input is confidently *not* "others" in its own group, so
    its smallest "others" probability is small; an OOD input is "others" everywhere.

    Reference:
        Huang & Li, "MOS: Towards Scaling Out-of-distribution Detection for Large Semantic
        Space", CVPR 2021, arXiv:2105.01879, Sec. 3, the Minimum Others Score
        ``S_MOS(x) = −min_g p^g_others(x)`` (synthesis_and_mos.md §3.6, §4.9). The paper's
        score is higher = more ID; oodlab returns ``−S_MOS = min_g p^g_others``.

    Notes:
        Computed in float64 and returned as float32, so "others" probabilities below about
        1e-38 (logit gaps beyond ~87) tie at 0.
    """
    others = torch.stack([p[:, 0] for p in _group_softmaxes(logits, group_sizes)], dim=1)
    return others.amin(dim=1).float()


def mos_predict(logits: Tensor, group_sizes: Sequence[int]) -> Tensor:
    """Group-aware class prediction ``(N,)`` as a flat class index.

    Per group, softmax over its slice and drop "others"; the group whose best remaining
    probability is highest wins, and its best class is predicted (MOS Sec. 3;
    synthesis_and_mos.md §3.4). Classes are numbered group by group, so class ``j ≥ 1`` of
    group ``g`` has flat index ``Σ_{g' < g} (n_g' − 1) + j − 1``. Picking the best group and
    then its best class is the argmax over all groups' class probabilities laid side by
    side; ties go to the earlier group, then the earlier class.
    """
    class_probs = [p[:, 1:] for p in _group_softmaxes(logits, group_sizes)]
    return torch.cat(class_probs, dim=1).argmax(dim=1)


@register_score("mos", needs=("logits", "groups"), paper="Huang & Li, CVPR 2021, arXiv:2105.01879")
class MOS(Score):
    """Minimum Others Score (:func:`mos`) on the logits of a group-softmax model.

    Args:
        group_sizes: logits per group, each including the group's "others" logit (so each
            is ≥ 2), in the order the groups' slices are concatenated in the logits. ``None``
            (default) is allowed so the score can be listed; scoring then raises a
            ``DataError`` (``oodlab eval`` fills it in from a model's ``group_sizes``).

    Notes:
        No hyper-parameter to tune; ``group_sizes`` describes the model.
    """

    def __init__(self, group_sizes: Sequence[int] | None = None) -> None:
        if group_sizes is not None:
            problem = _size_problem(group_sizes)
            if problem is not None:
                raise ConfigError(problem)
            group_sizes = tuple(group_sizes)
        self.group_sizes = group_sizes

    def score(self, outputs: Outputs) -> Tensor:
        if self.group_sizes is None:
            raise DataError(
                "score 'mos' needs the group sizes of a group-softmax model; pass "
                "MOS(group_sizes=[...]) (each group's classes + 1 for 'others')"
            )
        return mos(outputs.logits, self.group_sizes)
