"""The cross-entropy baseline (optionally logit-adjusted)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from oodlab.config import check
from oodlab.losses.ce import CrossEntropy
from oodlab.train.recipes import Batch, Recipe, forward_concat, register_method


@dataclass(frozen=True)
class CEOptions:
    """Options of ``ce``.

    Attributes:
        tau: logit-adjustment strength ``τ`` of ``CE(f + τ log π, y)`` (Menon et al. 2021);
            0 is plain cross-entropy.
    """

    tau: float = 0.0

    def __post_init__(self) -> None:
        check(self.tau >= 0, f"method.options.tau must be >= 0, got {self.tau}")


@register_method(
    "ce",
    config_type=CEOptions,
    paper="cross-entropy baseline (+ logit adjustment, arXiv:2007.07314)",
    default_score="msp",
)
class CERecipe(Recipe):
    """Plain (or logit-adjusted) cross-entropy on the ID batch; no outliers."""

    def __init__(self, options: CEOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.criterion = CrossEntropy(self.prior.float(), options.tau)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits = forward_concat(net, [batch.x])["logits"]
        loss = self.criterion.to(logits.device)(logits, batch.y)
        return loss, {"ce": loss.detach()}
