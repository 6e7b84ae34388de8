"""Outlier Exposure: cross-entropy on ID data plus λ · OE on auxiliary outliers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from oodlab.config import check
from oodlab.errors import DataError
from oodlab.losses.ce import CrossEntropy
from oodlab.losses.oe import outlier_exposure
from oodlab.train.recipes import Batch, Recipe, forward_concat, register_method


@dataclass(frozen=True)
class OEOptions:
    """Options of ``oe``.

    Attributes:
        weight: ``λ`` of the OE term (0.5 in PASCL / ImOOD baselines, 0.1 in PATT's CIFAR setup).
        tau: logit-adjustment strength ``τ`` of the ID cross-entropy (0: plain CE).
    """

    weight: float = 0.5
    tau: float = 0.0

    def __post_init__(self) -> None:
        check(self.weight >= 0, f"method.options.weight must be >= 0, got {self.weight}")
        check(self.tau >= 0, f"method.options.tau must be >= 0, got {self.tau}")


@register_method(
    "oe",
    config_type=OEOptions,
    needs=("aux",),
    paper="Hendrycks et al., ICLR 2019, arXiv:1812.04606",
    default_score="msp",
)
class OERecipe(Recipe):
    """``CE(f(x_id), y) + λ · OE(f(x_aux))`` from one concatenated forward (shared BatchNorm).

    Reference:
        Hendrycks, Mazeika & Dietterich, "Deep Anomaly Detection with Outlier Exposure",
        ICLR 2019, arXiv:1812.04606, Sec. 4 (Eq. 1 with the uniform-target cross-entropy).
        As in PASCL / ImOOD / PATT, ID and outliers go through one forward pass per step
        (long_tailed.md §1.3, §4.4).
    """

    uses_aux = True

    def __init__(self, options: OEOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.criterion = CrossEntropy(self.prior.float(), options.tau)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.x_aux is None:
            raise DataError("the oe method needs a batch of auxiliary outliers")
        id_logits, aux_logits = forward_concat(net, [batch.x, batch.x_aux]).parts("logits")
        ce = self.criterion.to(id_logits.device)(id_logits, batch.y)
        oe = outlier_exposure(aux_logits)
        return ce + self.options.weight * oe, {"ce": ce.detach(), "oe": oe.detach()}
