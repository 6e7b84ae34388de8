"""ImOOD training-time regularisation (``ada_*``), with the PASCL auxiliary loss option."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from oodlab.config import check
from oodlab.errors import DataError
from oodlab.losses.ce import CrossEntropy
from oodlab.losses.imood import Detector, ImOODRegulariser, detector_score
from oodlab.losses.oe import outlier_exposure
from oodlab.losses.pascl import pascl_contrastive, tail_classes
from oodlab.train.recipes import Batch, Recipe, forward_concat, register_method


@dataclass(frozen=True)
class ImOODOptions:
    """Options of ``imood`` (defaults: the README's CIFAR-LT runs, long_tailed.md §2.5).

    Attributes:
        detector: the regularised detector — ``bin_disc`` (``ada_bin_disc``: a binary logit
            head, the recommended one), ``energy`` (``ada_energy``: ``g = a·LSE(f) + b``),
            ``msp`` (``g = a·(max softmax − 1/C) + b``) or ``oe`` (as ``msp``, plus OE).
        weight: ``λ`` of ``L_OOD`` (0.5). tau: logit adjustment ``τ_LA`` of the ID
            cross-entropy and of ``π̃`` (1.0).
        aux_loss: ``pascl`` (the PASCL contrastive term on a projection head) or ``none``.
        aux_weight: ``λ2`` (0.05). temperature, k, proj_dim: of the PASCL term (0.07, 0.4, 128).
        smoothing: label smoothing of the ID posterior in ``β`` (0.2).
    """

    detector: Detector = "bin_disc"
    weight: float = 0.5
    tau: float = 1.0
    aux_loss: Literal["pascl", "none"] = "pascl"
    aux_weight: float = 0.05
    temperature: float = 0.07
    k: float = 0.4
    proj_dim: int = 128
    smoothing: float = 0.2

    def __post_init__(self) -> None:
        check(self.weight >= 0, f"method.options.weight must be >= 0, got {self.weight}")
        check(self.tau >= 0, f"method.options.tau must be >= 0, got {self.tau}")
        check(
            0 <= self.smoothing < 1, f"method.options.smoothing must be in [0, 1): {self.smoothing}"
        )
        check(self.temperature > 0, f"method.options.temperature must be > 0: {self.temperature}")


def _score_of(options: ImOODOptions) -> str:
    return {"bin_disc": "bin_disc", "energy": "energy"}.get(options.detector, "msp")


@register_method(
    "imood",
    config_type=ImOODOptions,
    needs=("aux",),
    paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430",
    default_score=_score_of,
)
class ImOODRecipe(Recipe):
    """``LA-CE(2 views) + λ·(hinge + bias-adjusted BCE [+ OE]) + λ2·PASCL`` in one forward.

    The γ head (``imood_bias``) estimates the class-aware bias ``β(x)``; the detector logit
    ``g`` is trained to be the *balanced* one, so the model is then tested with the plain
    score (``bin_disc`` for the default detector, ``energy`` / ``msp`` otherwise) and the
    raw logits classify (no test-time adjustment).

    Reference:
        Liu, Li, Zhu, Yu, Chen & Wu, "Rethinking Out-of-Distribution Detection on Imbalanced
        Data Distribution", NeurIPS 2024, arXiv:2407.16430, Sec. 3.3 and Eq. 10;
        official ``train.py`` (long_tailed.md §2.5, §2.6 (a)).

    Notes:
        ``ada_maha`` is not offered: the official feature pool is filled with outlier
        features under ID labels and its sign is inverted (long_tailed.md §2.9), so there is
        no working reference to be faithful to. The binary logit is a separate linear head
        instead of a ``(C+1)``-th classifier output (the same function).
    """

    views = 2
    uses_aux = True

    def __init__(self, options: ImOODOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        heads: dict[str, Mapping[str, object]] = {"imood_bias": {"kind": "imood_bias"}}
        if options.detector == "bin_disc":
            heads["bin_logit"] = {"kind": "bin_logit"}
        if options.aux_loss == "pascl":
            heads["projection"] = {"kind": "projection", "out_dim": options.proj_dim}
        self.heads = heads
        self.criterion = CrossEntropy(self.prior.float(), options.tau)
        self.regulariser = ImOODRegulariser(self.prior, options.tau, options.smoothing)
        self.tail = tail_classes(class_counts, options.k)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.options.detector == "bin_disc":  # the affine maps a score: unused here (DDP)
            model.extra_heads["imood_bias"].affine.requires_grad_(False)  # type: ignore[index, union-attr]
        return model

    def _detector_logit(self, model: nn.Module, z: Tensor) -> dict[str, Tensor]:
        """``g = a·s(f(z)) + b`` inside the forward, so DDP sees the affine's gradient."""
        affine = model.extra_heads["imood_bias"].affine  # type: ignore[index, union-attr]
        score = detector_score(model.head(z), self.options.detector)  # type: ignore[operator]
        return {"det_logit": affine(score[:, None])[:, 0]}

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.x_aux is None:
            raise DataError("the imood method needs a batch of auxiliary outliers")
        opts = self.options
        fn = None if opts.detector == "bin_disc" else self._detector_logit
        out = forward_concat(net, [*batch.views, batch.x_aux], heads=tuple(self.heads), fn=fn)
        logits = out["logits"]
        num_id = len(batch.views) * len(batch.y)
        is_aux = torch.arange(len(logits), device=logits.device) >= num_id
        targets = torch.cat(
            [batch.y.repeat(len(batch.views)), batch.y.new_full((len(batch.x_aux),), -1)]
        )
        ce = self.criterion.to(logits.device)(logits[:num_id], targets[:num_id])
        det = out["bin_logit"] if opts.detector == "bin_disc" else out["det_logit"]
        terms = self.regulariser.to(logits.device)(logits, det, out["imood_bias"], targets, is_aux)
        ood = terms["hinge"] + terms["bce"]
        if opts.detector == "oe":
            terms["oe"] = outlier_exposure(logits[num_id:])
            ood = ood + terms["oe"]
        loss = ce + opts.weight * ood
        if opts.aux_loss == "pascl":
            *id_proj, aux_proj = out.parts("projection")
            self.tail = self.tail.to(batch.y.device)  # moved once, not copied every step
            terms["pascl"] = pascl_contrastive(
                id_proj, batch.y, aux_proj, self.tail, opts.temperature
            )
            loss = loss + opts.aux_weight * terms["pascl"]
        return loss, {"ce": ce.detach(), **{k: v.detach() for k, v in terms.items()}}
