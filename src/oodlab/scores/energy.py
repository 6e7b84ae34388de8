"""Energy score: the free energy ``-T · LSE(f(x)/T)``; higher = more OOD."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.scores.base import Score, register_score, require_positive
from oodlab.types import Outputs


def energy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Free energy ``E(x) = -T · logsumexp(f(x) / T)`` for logits ``(N, C)``; higher = more OOD.

    Reference:
        Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020,
        arXiv:2010.03496, Eq. 1 and Eq. 4. The paper thresholds the negative energy
        (higher = more ID); the energy itself is already oriented as oodlab needs.
    """
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=1)


@register_score("energy", needs=("logits",), paper="Liu et al., NeurIPS 2020, arXiv:2010.03496")
class Energy(Score):
    """Free energy with temperature ``T`` (paper default 1): :func:`energy`.

    ``search_space`` is OpenOOD v1.5's (``configs/postprocessors/ebo.yml``: ``T ∈ [1]``), so
    tuning keeps the paper's ``T = 1``; pass another grid to ``with_params`` to search.
    """

    search_space = {"temperature": (1.0,)}

    def __init__(self, temperature: float = 1.0) -> None:
        require_positive("temperature", temperature)
        self.temperature = temperature

    def score(self, outputs: Outputs) -> Tensor:
        return energy(outputs.logits, self.temperature)
