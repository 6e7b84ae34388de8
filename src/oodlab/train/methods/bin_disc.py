"""BinDisc: cross-entropy plus a binary ID-vs-outlier discriminator on the features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from oodlab.config import check
from oodlab.errors import DataError
from oodlab.losses.bindisc import binary_discrimination
from oodlab.losses.ce import CrossEntropy
from oodlab.train.recipes import Batch, Recipe, forward_concat, register_method


@dataclass(frozen=True)
class BinDiscOptions:
    """Options of ``bin_disc``.

    Attributes:
        weight: ``λ`` of the binary cross-entropy (0.5, ImOOD's baselines).
        tau: logit-adjustment strength of the ID cross-entropy (0: plain CE).
    """

    weight: float = 0.5
    tau: float = 0.0

    def __post_init__(self) -> None:
        check(self.weight >= 0, f"method.options.weight must be >= 0, got {self.weight}")
        check(self.tau >= 0, f"method.options.tau must be >= 0, got {self.tau}")


@register_method(
    "bin_disc",
    config_type=BinDiscOptions,
    needs=("aux",),
    paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430 (bin_disc baseline)",
    default_score="bin_disc",
)
class BinDiscRecipe(Recipe):
    """``CE(f(x_id), y) + λ·BCE(σ(g), 1[ID])`` with ``g`` a linear ``bin_logit`` head.

    Reference:
        Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430, the ``bin_disc`` baseline
        (long_tailed.md §2.3, §2.5). Scored with ``bin_disc`` = ``1 − σ(g)``.

    Notes:
        The official code makes ``g`` the ``(C+1)``-th classifier output; oodlab keeps it as
        a separate linear head on the same features — the same function, with the
        classifier's softmax over the ``C`` ID classes only, as the official code also uses.
    """

    uses_aux = True
    heads = {"bin_logit": {"kind": "bin_logit"}}

    def __init__(self, options: BinDiscOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.criterion = CrossEntropy(self.prior.float(), options.tau)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.x_aux is None:
            raise DataError("the bin_disc method needs a batch of auxiliary outliers")
        out = forward_concat(net, [batch.x, batch.x_aux], heads=("bin_logit",))
        id_logits, _ = out.parts("logits")
        id_g, aux_g = out.parts("bin_logit")
        ce = self.criterion.to(id_logits.device)(id_logits, batch.y)
        bce = binary_discrimination(id_g, aux_g)
        return ce + self.options.weight * bce, {"ce": ce.detach(), "bce": bce.detach()}
