"""PASCL: partial and asymmetric supervised contrastive loss for long-tailed OOD detection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss
from oodlab.losses.oe import outlier_exposure


def tail_classes(class_counts: Sequence[int], k: float) -> Tensor:
    """Boolean ``(C,)`` mask of the ``C − round((1 − k)·C)`` classes with the fewest images.

    The official code takes the classes of index ``≥ round((1 − k)·C)``, which is the same set
    on CIFAR-LT (counts fall with the index) but not on ImageNet-LT, whose indices are not
    frequency-sorted; oodlab ranks by the training counts (ties: the higher index is the
    tail), the intended meaning of "tail" (long_tailed.md §1.9).
    """
    if not 0 < k <= 1:
        raise ConfigError(f"the PASCL tail fraction k must be in (0, 1], got {k}")
    num = len(class_counts)
    num_tail = num - round((1 - k) * num)
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    # Descending by count, ascending by index among ties: the last num_tail are the tail.
    order = sorted(range(num), key=lambda c: (-float(counts[c]), c))
    mask = torch.zeros(num, dtype=torch.bool)
    mask[order[num - num_tail :]] = True
    return mask


def pascl_contrastive(
    id_views: Sequence[Tensor], labels: Tensor, aux: Tensor, tail: Tensor, temperature: float
) -> Tensor:
    """Partial, asymmetric SupCon over L2-normalised projections; 0 without tail samples.

    Anchors are the views of tail-class ID samples; the contrast set is those views plus
    every outlier projection (negatives only). Each anchor's target is uniform over the
    other tail views of its class (its own second view included); the anchor is removed.

    Args:
        id_views: per view, ``(B, d)`` projections of the same ID images.
        labels: ``(B,)`` ID labels; ``aux``: ``(B_aux, d)`` outlier projections.
        tail: ``(C,)`` boolean mask of tail classes (:func:`tail_classes`).
        temperature: ``T`` (0.07 CIFAR-10-LT, 0.2 CIFAR-100-LT).

    Reference:
        Wang, Zhang, Xie, Wang & Wei (PASCL), "Partial and Asymmetric Contrastive Learning
        for Out-of-Distribution Detection in Long-Tailed Recognition", ICML 2022,
        arXiv:2207.01160, Eq. 5 (long_tailed.md §1.4). The official per-class weight
        ``sign(·)`` is +1 on every tail class, so it is omitted.
    """
    is_tail = tail.to(labels.device)[labels]
    if labels.device.type != "cpu":  # no host sync on an accelerator: the masked form
        return _masked_contrastive(id_views, labels, aux, is_tail, temperature)
    if not bool(is_tail.any()):
        return sum((v.sum() for v in id_views), aux.sum()) * 0.0  # keeps the graph connected
    anchors = torch.cat([view[is_tail] for view in id_views])
    anchor_labels = labels[is_tail].repeat(len(id_views))
    n = len(anchors)
    sim = anchors @ torch.cat([anchors, aux]).T / temperature
    sim = sim - sim.max(dim=1, keepdim=True).values.detach()
    not_self = torch.ones_like(sim, dtype=torch.bool)
    not_self[:, :n].fill_diagonal_(False)
    log_prob = sim - torch.logsumexp(sim.masked_fill(~not_self, float("-inf")), dim=1, keepdim=True)
    positive = torch.zeros_like(not_self)
    positive[:, :n] = anchor_labels[:, None] == anchor_labels[None, :]
    positive &= not_self
    target = positive.to(log_prob.dtype) / positive.sum(dim=1, keepdim=True).clamp_min(1)
    return -(target * log_prob.masked_fill(~not_self, 0.0)).sum(dim=1).mean()


def _masked_contrastive(
    id_views: Sequence[Tensor], labels: Tensor, aux: Tensor, is_tail: Tensor, temperature: float
) -> Tensor:
    """:func:`pascl_contrastive` without selecting the tail rows (no data-dependent shapes, so
    no host sync): every view is a row, non-tail rows and columns are masked out and the
    anchors' mean is a masked sum over their count. Equal to the indexed form up to float
    round-off (a test checks values and gradients); the indexed form is kept on the CPU,
    where a sync costs nothing, so CPU training stays bit-identical to earlier versions."""
    anchors = torch.cat(list(id_views))
    is_anchor = is_tail.repeat(len(id_views))
    anchor_labels = labels.repeat(len(id_views))
    n = len(anchors)
    sim = anchors @ torch.cat([anchors, aux]).T / temperature
    sim = sim - sim.max(dim=1, keepdim=True).values.detach()  # any row shift: LSE-invariant
    contrast = torch.cat([is_anchor, is_anchor.new_ones(len(aux))])
    allowed = contrast[None, :].expand(n, -1).clone()
    allowed[:, :n].fill_diagonal_(False)
    allowed |= ~is_anchor[:, None]  # rows that are no anchor: any finite value, weighted 0
    log_prob = sim - torch.logsumexp(sim.masked_fill(~allowed, float("-inf")), dim=1, keepdim=True)
    positive = torch.zeros_like(allowed)
    positive[:, :n] = (anchor_labels[:, None] == anchor_labels[None, :]) & is_anchor[None, :]
    positive &= allowed & is_anchor[:, None]
    target = positive.to(log_prob.dtype) / positive.sum(dim=1, keepdim=True).clamp_min(1)
    per_row = -(target * log_prob.masked_fill(~allowed, 0.0)).sum(dim=1)
    weight = is_anchor.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp_min(1)


@register_loss("pascl", paper="Wang et al. (PASCL), ICML 2022, arXiv:2207.01160")
class PASCLLoss(nn.Module):
    """Stage 1 of PASCL: ``CE(views) + λ1 · OE(aux) + λ2 · pascl_contrastive``.

    Args:
        class_counts: training images per class (defines the tail).
        oe_weight: ``λ1`` (0.5); contrast_weight: ``λ2`` (0.1 CIFAR-10-LT, 0.02 CIFAR-100-LT).
        temperature: ``T`` (0.07 / 0.2); k: tail fraction of the classes (0.4).
    """

    tail: Tensor

    def __init__(
        self,
        class_counts: Sequence[int],
        oe_weight: float = 0.5,
        contrast_weight: float = 0.1,
        temperature: float = 0.07,
        k: float = 0.4,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"the PASCL temperature must be > 0, got {temperature}")
        self.register_buffer("tail", tail_classes(class_counts, k))
        self.oe_weight, self.contrast_weight, self.temperature = (
            oe_weight,
            contrast_weight,
            temperature,
        )

    def terms(
        self,
        id_logits: Sequence[Tensor],
        id_proj: Sequence[Tensor],
        labels: Tensor,
        aux_logits: Tensor,
        aux_proj: Tensor,
    ) -> dict[str, Tensor]:
        """The three terms, unweighted: ``ce`` (mean over every view), ``oe``, ``pascl``."""
        ce = nn.functional.cross_entropy(torch.cat(list(id_logits)), labels.repeat(len(id_logits)))
        oe = outlier_exposure(aux_logits)
        pascl = pascl_contrastive(id_proj, labels, aux_proj, self.tail, self.temperature)
        return {"ce": ce, "oe": oe, "pascl": pascl}

    def forward(
        self,
        id_logits: Sequence[Tensor],
        id_proj: Sequence[Tensor],
        labels: Tensor,
        aux_logits: Tensor,
        aux_proj: Tensor,
    ) -> Tensor:
        t = self.terms(id_logits, id_proj, labels, aux_logits, aux_proj)
        return t["ce"] + self.oe_weight * t["oe"] + self.contrast_weight * t["pascl"]
