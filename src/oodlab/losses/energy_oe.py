"""Energy-bounded outlier exposure: squared hinges on the free energy of ID and outliers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss


def energy_hinges(id_logits: Tensor, aux_logits: Tensor, m_in: float, m_out: float) -> Tensor:
    """``mean ReLU(E_in − m_in)² + mean ReLU(m_out − E_out)²`` with ``E = −LSE(f)``.

    ID energies are pushed below ``m_in``, outlier energies above ``m_out``.

    Reference:
        Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020,
        arXiv:2010.03759, Eq. 5 (the regulariser ``L_energy``); the ImOOD baseline ``energy``
        (long_tailed.md §2.5, §4.5).
    """
    e_in = -torch.logsumexp(id_logits, dim=1)
    e_out = -torch.logsumexp(aux_logits, dim=1)
    return (e_in - m_in).relu().pow(2).mean() + (m_out - e_out).relu().pow(2).mean()


@register_loss("energy_oe", paper="Liu et al., NeurIPS 2020, arXiv:2010.03759")
class EnergyOELoss(nn.Module):
    """``CE(f(x_id), y) + λ · energy_hinges`` on a batch whose rows ``is_aux`` are outliers.

    Args:
        weight: ``λ``; 0.1 in Liu et al. (ImOOD writes it as 0.5 · 0.2, the same value).
        m_in, m_out: energy margins; −23 / −5 for CIFAR-10 (−27 / −5 for CIFAR-100).
    """

    def __init__(self, weight: float = 0.1, m_in: float = -23.0, m_out: float = -5.0) -> None:
        super().__init__()
        if m_in >= m_out:
            raise ConfigError(f"energy margins need m_in < m_out, got m_in={m_in}, m_out={m_out}")
        self.weight, self.m_in, self.m_out = weight, m_in, m_out

    def forward(self, logits: Tensor, targets: Tensor, is_aux: Tensor) -> Tensor:
        ce = nn.functional.cross_entropy(logits[~is_aux], targets[~is_aux])
        hinges = energy_hinges(logits[~is_aux], logits[is_aux], self.m_in, self.m_out)
        return ce + self.weight * hinges
