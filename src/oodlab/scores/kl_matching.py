"""KL matching: KL divergence from the softmax to the closest class template."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._stream import row_chunks
from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs

#: ``zero_template="floor"`` floors template entries at this value (see :func:`kl_matching`).
TEMPLATE_FLOOR = 1e-12


ZeroTemplate = Literal["inf", "floor"]


def kl_matching(logits: Tensor, templates: Tensor, zero_template: ZeroTemplate = "inf") -> Tensor:
    """``min_c KL(p(x) ‖ d_c)`` for logits ``(N, C)`` and templates ``(K, C)``; higher = more OOD.

    ``p = softmax(f(x))``. All ``K`` divergences come from one matrix product,
    ``KL(p ‖ d_c) = Σ_k p_k log p_k − Σ_k p_k log d_ck``, computed in float64.

    Reference:
        Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song, "Scaling
        Out-of-Distribution Detection for Real-World Settings", ICML 2022, arXiv:1911.11132,
        the KL-matching baseline (the paper writes it in prose, with no numbered equation;
        synthesis_and_mos.md §4.6). The paper's score is ``−min_c KL`` (higher = more ID);
        oodlab returns ``min_c KL``.

    Args:
        logits: ``(N, C)``. templates: ``(K, C)`` class templates.
        zero_template: a template entry ``d_ck = 0`` (the one-hot template of a class that
            was never predicted) facing ``p_k > 0``: ``"inf"`` (default) gives that
            template the exact divergence ``+∞``, so it never wins the minimum (OpenOOD's
            KLM and scipy's ``entropy``); ``"floor"`` floors template entries at ``1e-12``
            (oodlab before 0.2), which costs ``≈ 27.6·(1 − p_c)`` nats: finite, but *small*
            for a sample predicted as that class with confidence, which the one-hot template
            then matches — such samples score as ID where OpenOOD scores them by the other
            templates.

    Notes:
        Terms with ``p_k = 0`` are dropped (``0 log 0 = 0``), as in the paper and scipy. The
        minimum is ``+∞`` only if every template has a zero facing a ``p_k > 0``, which needs
        every class to be never predicted at fit time.
    """
    if templates.ndim != 2 or templates.shape[1] != logits.shape[1]:
        raise DataError(
            f"templates must be (K, {logits.shape[1]}) for {logits.shape[1]} logits, "
            f"got shape {tuple(templates.shape)}; fit the score on outputs of the same model"
        )
    if zero_template not in ("inf", "floor"):
        raise ConfigError(f"zero_template must be 'inf' or 'floor', got {zero_template!r}")
    templates = templates.to(logits.device, torch.float64)
    zero = templates <= 0
    if zero_template == "floor":
        log_templates = templates.clamp_min(TEMPLATE_FLOOR).log()  # (K, C)
    else:  # zero entries left out here, their +inf added below
        log_templates = torch.where(zero, 0.0, templates.clamp_min(TEMPLATE_FLOOR).log())
    out = []
    for block in row_chunks(logits):  # (rows, K) float64 at a time, not (N, K)
        log_p = torch.log_softmax(block.double(), dim=1)
        p = log_p.exp()
        neg_entropy = torch.where(p > 0, p * log_p, 0.0).sum(dim=1, keepdim=True)  # (n, 1)
        divergences = neg_entropy - p @ log_templates.T  # (n, K)
        if zero_template == "inf":  # a zero template entry facing p_k > 0: KL = +inf
            infinite = (p > 0).double() @ zero.double().T > 0
            divergences = divergences.masked_fill(infinite, float("inf"))
        out.append(divergences.amin(dim=1).float())
    return torch.cat(out) if out else torch.zeros(0, device=logits.device)


def class_templates(logits: Tensor, assigned: Tensor, num_classes: int) -> Tensor:
    """``(C, C)`` float64 templates: ``d_c`` = mean softmax of the rows assigned to class ``c``.

    A class no row is assigned to gets the one-hot template ``e_c`` (OpenOOD's KLM rule).
    """
    sums = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    assigned = assigned.long().cpu()
    start = 0
    for block in row_chunks(logits):  # accumulated chunk by chunk, no (N, C) float64 copy
        probs = torch.softmax(block.double(), dim=1).cpu()
        sums.index_add_(0, assigned[start : start + len(block)], probs)
        start += len(block)
    counts = torch.bincount(assigned, minlength=num_classes)
    templates = torch.eye(num_classes, dtype=torch.float64)
    seen = counts > 0
    templates[seen] = sums[seen] / counts[seen, None].double()
    return templates


@register_score(
    "kl_matching",
    needs=("logits",),
    requires_fit=True,
    paper="Hendrycks et al., ICML 2022, arXiv:1911.11132",
)
class KLMatching(Score):
    """KL matching (:func:`kl_matching`) with one template per class, learned by ``fit``.

    Args:
        zero_template: ``"inf"`` (OpenOOD) or ``"floor"``; see :func:`kl_matching`.
        template_labels: which samples define ``d_c``: ``"predicted"`` (default; OpenOOD's
            KLM and the paper: the fit samples whose *predicted* class is ``c``; a class never
            predicted gets the one-hot template) or ``"true"`` (the MOS repository: the fit
            samples whose ground-truth label is ``c``; every class needs a labelled sample or
            it too gets the one-hot template).

    Attributes:
        templates_: ``(C, C)`` float64 class templates, one row per class.

    Notes:
        OpenOOD fits the templates on the ID *validation* split and the MOS repository on
        the ID *test* set (a leak, synthesis_and_mos.md §3.10). oodlab fits them on whatever
        ``fit`` receives: ``oodlab.evaluate`` passes the training outputs, whose softmax is
        sharper than on held-out data (training accuracy is near 100%); pass held-out ID
        outputs to ``fit`` to follow OpenOOD exactly. KL matching has no tuned
        hyper-parameter in OpenOOD, hence no ``search_space``.
    """

    def __init__(
        self,
        template_labels: Literal["predicted", "true"] = "predicted",
        zero_template: ZeroTemplate = "inf",
    ) -> None:
        if template_labels not in ("predicted", "true"):
            raise ConfigError(
                f"template_labels must be 'predicted' or 'true', got {template_labels!r}"
            )
        if zero_template not in ("inf", "floor"):
            raise ConfigError(f"zero_template must be 'inf' or 'floor', got {zero_template!r}")
        self.template_labels = template_labels
        self.zero_template: ZeroTemplate = zero_template

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> KLMatching:
        if len(train) == 0:
            raise DataError("kl_matching cannot be fitted on zero samples; pass ID outputs")
        num_classes = train.num_classes
        if self.template_labels == "predicted":
            assigned = torch.cat([block.argmax(dim=1) for block in row_chunks(train.logits)])
        else:
            assigned = train.labels
            if bool(((assigned < 0) | (assigned >= num_classes)).any()):
                raise DataError(
                    f"template_labels='true' needs labels in [0, {num_classes}) for every fit "
                    f"sample, got values from {int(assigned.min())} to {int(assigned.max())}; "
                    "fit on labelled ID outputs or use template_labels='predicted'"
                )
        self.templates_ = class_templates(train.logits, assigned, num_classes)
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("templates_")
        return kl_matching(outputs.logits, self.templates_, self.zero_template)
