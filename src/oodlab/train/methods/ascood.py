"""ASCOOD: training with pixel-space virtual outliers synthesised from each ID batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from oodlab.config import check
from oodlab.errors import ConfigError
from oodlab.losses.ascood import uniform_kl
from oodlab.synthesis.ascood import OODType, alpha_schedule, synthesize
from oodlab.train.recipes import Batch, Recipe, Stage, forward_concat, register_method


@dataclass(frozen=True)
class ASCOODOptions:
    """Options of ``ascood`` (defaults: the official ``train_ascood.yml``).

    Attributes:
        weight: ``w`` of the uncertainty term KL(uniform ‖ softmax) on the outliers.
        sigma: ``σ`` of the z-scored features the classifier sees (a buffer saved with the
            weights).
        p_inv: fraction of input elements (``gradient``) or pixels (``shuffle``) perturbed.
        ood_type: ``gradient`` (x + α·G⊙M), ``shuffle`` (salient pixels permuted) or
            ``gaussian`` (α·N(0, I)).
        alpha_max, alpha_min: α falls linearly from ``alpha_max`` to ``alpha_min`` over the
            epochs (equal values: a constant α).

    The classifier's learning-rate factor (``fc_lr_factor``, 0.05 for CIFAR-100) is
    ``train.head_lr_factor``: the default :meth:`Recipe.param_groups` already puts the final
    linear layer in its own group at ``lr · head_lr_factor``.
    """

    weight: float = 1.0
    sigma: float = 0.5
    p_inv: float = 0.1
    ood_type: OODType = "gradient"
    alpha_max: float = 300.0
    alpha_min: float = 30.0

    def __post_init__(self) -> None:
        check(self.weight >= 0, f"method.options.weight must be >= 0, got {self.weight}")
        check(self.sigma > 0, f"method.options.sigma must be > 0, got {self.sigma}")
        check(0 <= self.p_inv <= 1, f"method.options.p_inv must be in [0, 1], got {self.p_inv}")
        check(
            self.ood_type in ("gradient", "shuffle", "gaussian"),
            f"method.options.ood_type must be gradient, shuffle or gaussian, got {self.ood_type!r}",
        )
        check(
            self.alpha_max >= self.alpha_min >= 0,
            f"method.options needs alpha_max >= alpha_min >= 0, got {self.alpha_max} and "
            f"{self.alpha_min}",
        )


class _FromNormalised(nn.Module):
    """The model as a function of normalised inputs ``(x − mean)/std`` (no own parameters)."""

    def __init__(self, model: nn.Module, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.inner, self.mean, self.std = model, mean, std

    def forward(self, x_norm: Tensor) -> Tensor:
        out: Tensor = self.inner(x_norm * self.std + self.mean)
        return out


@register_method(
    "ascood",
    config_type=ASCOODOptions,
    paper="Regmi, CVPR 2026, arXiv:2411.10794 (ASCOOD)",
    default_score="iodin",
)
class ASCOODRecipe(Recipe):
    """ID cross-entropy plus ``w · KL(u ‖ softmax)`` on outliers synthesised from the batch.

    Per step: the true-class input gradient in eval mode (on the unwrapped model, parameters
    untouched), the outliers ``x′`` from it, then **one** forward over ``[x; x′]`` in train
    mode (BatchNorm statistics shared, pitfall §1.10.6). The classifier sees
    ``σ·zscore(h)``; ``features`` stay the raw ``h`` (§1.2).

    Reference:
        Regmi, "Image-based Outlier Synthesis With Training Data" (first titled "Going Beyond
        Conventional OOD Detection"), CVPR 2026, arXiv:2411.10794, Sec. 3;
        synthesis_and_mos.md §1.2–§1.5. i-ODIN (§1.7) is the default post-processor.

    Notes:
        With ``model.mean/std`` set, the outliers are made in normalised-input space (where the
        paper's α values live: a step ``α·G`` there moves raw pixels by ``α·σ_ch²·G_raw``) and
        mapped back to the [0, 1] images the model receives; without them, in [0, 1] space.
        The attribution pass is an extra forward + backward per step (about 1.7× the step
        cost of CE); ``gaussian`` skips it. α is set in :meth:`on_epoch_start` with the
        1-based epoch, as the official trainer (OpenOOD epochs start at 1).
    """

    def __init__(self, options: ASCOODOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.zscore_sigma = options.sigma
        self.alpha = options.alpha_max

    def on_epoch_start(self, epoch: int, stage: Stage) -> None:
        opts = self.options
        self.alpha = alpha_schedule(epoch + 1, stage.train.epochs, opts.alpha_max, opts.alpha_min)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.model is None:
            raise ConfigError("the ascood method needs batch.model for its attribution pass")
        opts = self.options
        mean, std = getattr(batch.model, "mean", None), getattr(batch.model, "std", None)
        if isinstance(mean, Tensor) and isinstance(std, Tensor):
            # The paper synthesises in normalised-input space; so does oodlab, then maps back.
            fed = _FromNormalised(batch.model, mean, std)
            x_norm = (batch.x - mean) / std
            made = synthesize(fed, x_norm, batch.y, opts.ood_type, self.alpha, opts.p_inv)
            outliers = (made * std + mean).to(batch.x.dtype)
        else:
            outliers = synthesize(
                batch.model, batch.x, batch.y, opts.ood_type, self.alpha, opts.p_inv
            )
        id_logits, out_logits = forward_concat(net, [batch.x, outliers]).parts("logits")
        ce = nn.functional.cross_entropy(id_logits, batch.y)
        unc = uniform_kl(out_logits)
        logs = {"ce": ce.detach(), "unc": unc.detach(), "alpha": torch.tensor(self.alpha)}
        return ce + opts.weight * unc, logs

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha = float(state.get("alpha", self.alpha))
