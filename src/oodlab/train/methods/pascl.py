"""PASCL: OE + partial, asymmetric contrastive learning, then auxiliary-branch fine-tuning."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from oodlab.config import RunConfig, check
from oodlab.errors import DataError
from oodlab.losses.ce import CrossEntropy
from oodlab.losses.pascl import PASCLLoss
from oodlab.models.two_branch import TwoBranch
from oodlab.train.recipes import Batch, Recipe, Stage, forward_concat, register_method


@dataclass(frozen=True)
class PASCLOptions:
    """Options of ``pascl`` (defaults: CIFAR-10-LT, long_tailed.md §1.4–1.5).

    Attributes:
        oe_weight: ``λ1`` (0.5). contrast_weight: ``λ2`` (0.1 CIFAR-10-LT, 0.02 CIFAR-100-LT).
        temperature: ``T`` of the contrastive loss (0.07 CIFAR-10-LT, 0.2 CIFAR-100-LT).
        k: fraction of classes that are "tail" (0.4); proj_dim: projection size (128).
        abf_epochs: epochs of auxiliary-branch fine-tuning (10 CIFAR, 3 ImageNet; 0 skips it).
        abf_optimizer, abf_lr, abf_weight_decay, abf_batch_size: its optimiser (Adam 5e-4,
            wd 5e-4, batch 128 on CIFAR; SGD 0.01, wd 5e-5 on ImageNet), cosine schedule.
        abf_tau: logit-adjustment strength of its cross-entropy (1.0).
    """

    oe_weight: float = 0.5
    contrast_weight: float = 0.1
    temperature: float = 0.07
    k: float = 0.4
    proj_dim: int = 128
    abf_epochs: int = 10
    abf_optimizer: Literal["adam", "sgd"] = "adam"
    abf_lr: float = 5e-4
    abf_weight_decay: float = 5e-4
    abf_batch_size: int = 128
    abf_tau: float = 1.0

    def __post_init__(self) -> None:
        check(0 < self.k <= 1, f"method.options.k must be in (0, 1], got {self.k}")
        check(self.temperature > 0, f"method.options.temperature must be > 0: {self.temperature}")
        check(self.abf_epochs >= 0, f"method.options.abf_epochs must be >= 0: {self.abf_epochs}")
        check(self.abf_lr > 0, f"method.options.abf_lr must be > 0, got {self.abf_lr}")


@register_method(
    "pascl",
    config_type=PASCLOptions,
    needs=("aux",),
    paper="Wang et al. (PASCL), ICML 2022, arXiv:2207.01160",
    default_score="msp",
)
class PASCLRecipe(Recipe):
    """Stage ``main``: ``CE(2 views) + λ1·OE + λ2·PASCL`` from one forward over
    ``[view 1 | view 2 | outliers]``; stage ``abf``: only the classification branch's
    BatchNorm (in train mode) and classifier learn, on ID data, with logit-adjusted CE.

    The model is a :class:`~oodlab.models.two_branch.TwoBranch`: MSP (the paper's score) and
    every other score use the stage-1 branch; ID accuracy comes from the fine-tuned branch.

    Reference:
        Wang, Zhang, Xie, Wang & Wei, "Partial and Asymmetric Contrastive Learning for
        Out-of-Distribution Detection in Long-Tailed Recognition", ICML 2022,
        arXiv:2207.01160, Eq. 6 (stage 1) and Sec. 4.3 (ABF); long_tailed.md §1.

    Notes:
        The official ``test.py`` reads accuracy from an ``aux_linear`` head that is never
        trained (long_tailed.md §1.9); oodlab uses the fine-tuned BatchNorm + classifier, as
        the paper intends. Tail classes are the fewest-image ones, not the high indices.
    """

    views = 2
    uses_aux = True

    def __init__(self, options: PASCLOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.heads = {"projection": {"kind": "projection", "out_dim": options.proj_dim}}
        self.criterion = PASCLLoss(
            class_counts, options.oe_weight, options.contrast_weight, options.temperature, options.k
        )
        self.abf_criterion = CrossEntropy(self.prior.float(), options.abf_tau)
        self._cls_ready = False

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return TwoBranch(model)

    def stages(self, config: RunConfig) -> list[Stage]:
        main = Stage("main", config.train, views=2, uses_aux=True)
        if self.options.abf_epochs == 0:
            return [main]
        abf_train = dataclasses.replace(
            config.train,
            epochs=self.options.abf_epochs,
            optimizer=self.options.abf_optimizer,
            lr=self.options.abf_lr,
            weight_decay=self.options.abf_weight_decay,
            nesterov=False,
            schedule="cosine",
            min_lr=0.0,
            warmup_epochs=0,
            warmup_steps=0,
            head_lr_factor=1.0,
            max_steps=None,
        )
        return [main, Stage("abf", abf_train, batch_size=self.options.abf_batch_size)]

    def on_stage_start(self, stage: Stage, model: nn.Module) -> None:
        assert isinstance(model, TwoBranch)  # built by prepare_model
        abf = stage.name == "abf"
        if abf:
            model.copy_ood_to_cls()
        model.requires_grad_(not abf)
        for param in model.classification_parameters():
            param.requires_grad_(abf)
        model.use_cls = abf
        self._cls_ready = abf

    def train_mode(self, model: nn.Module, stage: Stage) -> None:
        if stage.name != "abf":
            model.train()
            return
        assert isinstance(model, TwoBranch)
        model.eval()
        for module in model.cls.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.stage == "abf":
            logits = forward_concat(net, [batch.x])["logits"]
            ce = self.abf_criterion.to(logits.device)(logits, batch.y)
            return ce, {"la_ce": ce.detach()}
        if batch.x_aux is None:
            raise DataError("the pascl method needs a batch of auxiliary outliers")
        out = forward_concat(net, [*batch.views, batch.x_aux], heads=("projection",))
        *id_logits, aux_logits = out.parts("logits")
        *id_proj, aux_proj = out.parts("projection")
        terms = self.criterion.to(aux_logits.device).terms(
            id_logits, id_proj, batch.y, aux_logits, aux_proj
        )
        opts = self.options
        loss = terms["ce"] + opts.oe_weight * terms["oe"] + opts.contrast_weight * terms["pascl"]
        return loss, {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """The classification branch once fine-tuning has started (or training ended)."""
        assert isinstance(model, TwoBranch)
        return (model.cls if self._cls_ready else model.ood)(x).argmax(1)

    def on_train_end(self, model: nn.Module, context: object) -> None:
        assert isinstance(model, TwoBranch)
        if self.options.abf_epochs == 0:
            model.copy_ood_to_cls()  # no fine-tuning: both branches classify alike
        model.use_cls = False
        self._cls_ready = True
