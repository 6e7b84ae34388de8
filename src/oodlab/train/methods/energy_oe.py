"""Energy-bounded outlier exposure: cross-entropy plus squared energy hinges on outliers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from oodlab.config import check
from oodlab.errors import DataError
from oodlab.losses.ce import CrossEntropy
from oodlab.losses.energy_oe import energy_hinges
from oodlab.train.recipes import Batch, Recipe, forward_concat, register_method


@dataclass(frozen=True)
class EnergyOEOptions:
    """Options of ``energy_oe``.

    Attributes:
        weight: ``λ`` of the hinge term (0.1, Liu et al.; ImOOD's 0.5 · 0.2).
        m_in, m_out: energy margins (−23 / −5 on CIFAR-10, −27 / −5 on CIFAR-100).
        tau: logit-adjustment strength of the ID cross-entropy (0: plain CE).
    """

    weight: float = 0.1
    m_in: float = -23.0
    m_out: float = -5.0
    tau: float = 0.0

    def __post_init__(self) -> None:
        check(self.weight >= 0, f"method.options.weight must be >= 0, got {self.weight}")
        check(self.m_in < self.m_out, f"method.options needs m_in < m_out, got {self.m_in}")
        check(self.tau >= 0, f"method.options.tau must be >= 0, got {self.tau}")


@register_method(
    "energy_oe",
    config_type=EnergyOEOptions,
    needs=("aux",),
    paper="Liu et al., NeurIPS 2020, arXiv:2010.03759",
    default_score="energy",
)
class EnergyOERecipe(Recipe):
    """``CE(f(x_id), y) + λ·[ReLU(E_in − m_in)² + ReLU(m_out − E_out)²]``, one forward.

    Reference:
        Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020,
        arXiv:2010.03759, Eq. 4–5; the ImOOD ``energy`` baseline (long_tailed.md §2.5).
        Scored with the energy.
    """

    uses_aux = True

    def __init__(self, options: EnergyOEOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.criterion = CrossEntropy(self.prior.float(), options.tau)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.x_aux is None:
            raise DataError("the energy_oe method needs a batch of auxiliary outliers")
        id_logits, aux_logits = forward_concat(net, [batch.x, batch.x_aux]).parts("logits")
        ce = self.criterion.to(id_logits.device)(id_logits, batch.y)
        opts = self.options
        hinges = energy_hinges(id_logits, aux_logits, opts.m_in, opts.m_out)
        return ce + opts.weight * hinges, {"ce": ce.detach(), "energy": hinges.detach()}
