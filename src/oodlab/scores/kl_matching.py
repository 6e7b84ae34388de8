"""KL matching: KL divergence from the softmax to the closest class template."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from oodlab.errors import ConfigError
from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs

TEMPLATE_FLOOR = 1e-12


def kl_matching(logits: Tensor, templates: Tensor) -> Tensor:
    """``min_c KL(p(x) ‖ d_c)`` for logits ``(N, C)`` and templates ``(C, C)``; higher = more OOD.

    ``KL(p ‖ d) = Σ_k p_k log p_k − Σ_k p_k log d_k`` for all templates at once; terms with
    ``p_k = 0`` vanish and template entries are floored at ``1e-12`` (so a one-hot template
    gives a large finite divergence instead of infinity).

    Reference:
        Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song, "Scaling
        Out-of-Distribution Detection for Real-World Settings", ICML 2022, arXiv:1911.11132,
        Sec. 4 (KL matching). The paper's score is ``−min_c KL`` (higher = more ID); oodlab
        returns ``min_c KL``.
    """
    log_p = torch.log_softmax(logits.double(), dim=1)
    p = log_p.exp()
    entropy_term = (p * log_p).sum(1, keepdim=True)
    cross = p @ templates.double().clamp_min(TEMPLATE_FLOOR).log().T
    return (entropy_term - cross).amin(dim=1).float()


@register_score(
    "kl_matching",
    needs=("logits",),
    requires_fit=True,
    paper="Hendrycks et al., ICML 2022, arXiv:1911.11132",
)
class KLMatching(Score):
    """KL matching with templates ``d_c`` = mean softmax of the fit samples assigned to ``c``.

    Args:
        template_labels: ``"predicted"`` (OpenOOD's KLM and the paper: samples whose predicted
            class is ``c``; a class never predicted gets the one-hot template) or ``"true"``
            (the MOS repository: ground-truth labels).

    Notes:
        The MOS repository built its templates on the ID *test* set; oodlab fits them on
        whatever ``fit`` receives — the training outputs by default — so the test set stays clean.
    """

    def __init__(self, template_labels: Literal["predicted", "true"] = "predicted") -> None:
        if template_labels not in ("predicted", "true"):
            raise ConfigError(
                f"template_labels must be 'predicted' or 'true', got {template_labels!r}"
            )
        self.template_labels = template_labels

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> KLMatching:
        probs = torch.softmax(train.logits.double(), dim=1)
        num_classes = train.num_classes
        assigned = probs.argmax(1) if self.template_labels == "predicted" else train.labels
        sums = torch.zeros(num_classes, num_classes, dtype=torch.float64).index_add_(
            0, assigned, probs
        )
        counts = torch.bincount(assigned, minlength=num_classes)[:num_classes]
        templates = torch.eye(num_classes, dtype=torch.float64)
        seen = counts > 0
        templates[seen] = sums[seen] / counts[seen, None]
        self.templates_ = templates
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("templates_")
        return kl_matching(outputs.logits, self.templates_)
