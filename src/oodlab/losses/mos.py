"""MOS: the sum over groups of each group softmax's cross-entropy, "others" at index 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oodlab.errors import DataError
from oodlab.losses.base import register_loss
from oodlab.scores.mos import group_slices


def group_label_table(groups: Sequence[Sequence[int]]) -> Tensor:
    """``table[c, g]``: the label of class ``c`` in group ``g`` — its within-group index + 1 in
    its own group, 0 ("others") in every other group; ``(C, G)`` int64."""
    num_classes = sum(len(g) for g in groups)
    table = torch.zeros(num_classes, len(groups), dtype=torch.long)
    for g, members in enumerate(groups):
        for j, c in enumerate(members):
            table[c, g] = j + 1
    return table


def group_cross_entropy(
    logits: Tensor, group_targets: Tensor, group_sizes: Sequence[int]
) -> Tensor:
    """``Σ_g CE(ℓ^g(x), y^g)``, each CE averaged over the batch; groups are summed, not averaged.

    Args:
        logits: ``(N, Σ_g n_g)`` concatenated group logits ("others" first in each slice).
        group_targets: ``(N, G)`` per-group labels (0 = others).
        group_sizes: ``n_g`` per group, "others" included.

    Reference:
        Huang & Li, "MOS: Towards Scaling Out-of-distribution Detection for Large Semantic
        Space", CVPR 2021, arXiv:2105.01879, Eq. 2; synthesis_and_mos.md §3.4, §3.10.2.
    """
    slices = group_slices(group_sizes)
    if logits.shape[1] != slices[-1].stop or group_targets.shape != (len(logits), len(slices)):
        raise DataError(
            f"group logits {tuple(logits.shape)} / targets {tuple(group_targets.shape)} do not "
            f"fit the group sizes {list(group_sizes)}"
        )
    terms = [
        nn.functional.cross_entropy(logits[:, s].float(), group_targets[:, g])
        for g, s in enumerate(slices)
    ]
    return torch.stack(terms).sum()


@register_loss("mos", paper="Huang & Li, CVPR 2021, arXiv:2105.01879 (MOS)")
class GroupSoftmaxLoss(nn.Module):
    """Group-wise cross-entropy of a group-softmax head for flat class labels.

    Args:
        groups: the class ids of each group in within-group order (e.g.
            :attr:`oodlab.data.groupings.Grouping.groups`).
    """

    table: Tensor

    def __init__(self, groups: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.register_buffer("table", group_label_table(groups))
        self.group_sizes = [len(g) + 1 for g in groups]

    def targets(self, labels: Tensor) -> Tensor:
        """Per-group labels ``(N, G)`` of flat class labels ``(N,)``."""
        return self.table.to(labels.device)[labels]

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return group_cross_entropy(logits, self.targets(labels), self.group_sizes)


__all__ = ["GroupSoftmaxLoss", "group_cross_entropy", "group_label_table"]
