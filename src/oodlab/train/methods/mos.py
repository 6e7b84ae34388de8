"""MOS: a group-softmax classifier (one softmax per semantic group, each with "others")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from oodlab.config import check
from oodlab.data.groupings import Grouping, from_group_ids, load_grouping
from oodlab.losses.mos import GroupSoftmaxLoss
from oodlab.scores.mos import mos_predict
from oodlab.train.recipes import Batch, Recipe, Stage, forward_concat, register_method


@dataclass(frozen=True)
class MOSOptions:
    """Options of ``mos``.

    Attributes:
        groups: the class → group mapping: a built-in name (``fashion_mnist``), a grouping
            file (JSON or text, :func:`oodlab.data.groupings.load_grouping`), or inline the
            group id of each class (``[0, 1, 0, 2, ...]``).
        freeze_backbone: train the group-softmax head only, the backbone frozen in eval mode
            (the paper's fine-tuning, ``num_block_open = 0``); ``false`` trains everything
            (from scratch, e.g. on ``fmnist_lt``).
        mixup_alpha: MixUp ``Beta(α, α)`` with one ``λ`` per batch (the code's 0.1 for sets of
            ≥ 20k images); 0 disables it.
    """

    groups: str | list[int] = "fashion_mnist"
    freeze_backbone: bool = True
    mixup_alpha: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.mixup_alpha >= 0,
            f"method.options.mixup_alpha must be >= 0, got {self.mixup_alpha}",
        )


def _grouping(groups: str | list[int], num_classes: int) -> Grouping:
    if isinstance(groups, str):
        return load_grouping(groups, num_classes)
    return from_group_ids(groups).check(num_classes)


@register_method(
    "mos",
    config_type=MOSOptions,
    paper="Huang & Li, CVPR 2021, arXiv:2105.01879 (MOS)",
    default_score="mos",
)
class MOSRecipe(Recipe):
    """``Σ_g CE(ℓ^g(x), y^g)`` on a zero-initialised group-softmax head (``Σ_g (n_g + 1)``
    logits); predictions by MOS's group rule, mapped back to the original class ids.

    Reference:
        Huang & Li, "MOS: Towards Scaling Out-of-distribution Detection for Large Semantic
        Space", CVPR 2021, arXiv:2105.01879, Sec. 3; synthesis_and_mos.md §3.3–§3.5. The score
        is the Minimum Others Score (``scores/mos.py``).

    Notes:
        The paper fine-tunes an ImageNet-pretrained BiT-S-R101x1 with its backbone frozen (BiT
        HyperRule: SGD 0.003, no weight decay, warm-up 500 steps, ÷10 at 6k/12k/18k, 20k
        steps). The classes inside a group keep the grouping's order; the model stores the
        flat-index → class-id map as the buffer ``group_class_ids`` so that evaluation can
        map MOS predictions back.
    """

    def __init__(self, options: MOSOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.grouping = _grouping(options.groups, self.num_classes)
        self.classifier = {"kind": "group_softmax", "group_sizes": self.grouping.group_sizes}
        self.criterion = GroupSoftmaxLoss(self.grouping.groups)
        self.class_ids = torch.tensor(self.grouping.class_order, dtype=torch.long)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        model.register_buffer("group_class_ids", self.class_ids.clone())
        return model

    def on_stage_start(self, stage: Stage, model: nn.Module) -> None:
        if self.options.freeze_backbone:
            getattr(model, "backbone", model).requires_grad_(False)

    def train_mode(self, model: nn.Module, stage: Stage) -> None:
        model.train()
        if self.options.freeze_backbone:
            getattr(model, "backbone", model).eval()  # BatchNorm/GroupNorm stay as trained

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = batch.x, batch.y
        criterion = self.criterion.to(x.device)
        alpha = self.options.mixup_alpha
        if alpha > 0:
            lam = float(torch.distributions.Beta(alpha, alpha).sample())
            perm = torch.randperm(len(x), device=x.device)
            logits = forward_concat(net, [lam * x + (1 - lam) * x[perm]])["logits"]
            loss = lam * criterion(logits, y) + (1 - lam) * criterion(logits, y[perm])
        else:
            loss = criterion(forward_concat(net, [x])["logits"], y)
        return loss, {"group_ce": loss.detach()}

    @torch.no_grad()
    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        flat = mos_predict(model(x), self.grouping.group_sizes)
        return self.class_ids.to(flat.device)[flat]
