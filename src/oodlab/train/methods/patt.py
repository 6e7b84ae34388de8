"""PATT: implicit semantic augmentation contrast + temperature-scaled logit adjustment + OE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn

from oodlab.config import RunConfig, check
from oodlab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_train,
    pascl_train,
    patt_imagenet_views,
    patt_views,
)
from oodlab.errors import DataError
from oodlab.losses.patt import PATTLoss
from oodlab.train.recipes import Batch, Recipe, Stage, forward_concat, register_method


@dataclass(frozen=True)
class PATTOptions:
    """Options of ``patt`` (defaults: CIFAR, long_tailed.md §3.4).

    Attributes:
        oe_weight: ``λ1`` (0.1 CIFAR, 0.02 ImageNet). tla_weight: ``λ2`` (0.5).
        temperature: ProCo ``τ`` (0.1). tla_scale: TLA temperature ``T_s`` (0.9 / 0.7).
        normalize: L2-normalise the contrastive features (ProCo, the default) or feed them
            raw (``false``: the official code). Measured on ``fmnist_lt_open``, 3 seeds
            (``benchmarks/results/patt_normalize_fmnist_lt_open.json``, paired by seed):
            normalised features give ``patt_energy`` AUROC 91.87 vs 87.99 (+3.87 ± 1.81),
            FPR95 22.12 vs 28.04, at an ID accuracy 1.6 ± 1.2 points lower (87.19 vs 88.82).
        projection_dim: contrastive features from a ``d → d → BN → ReLU → projection_dim``
            head (ImageNet: 1024); ``null``: the raw pooled features (CIFAR).
        views: ``patt_cifar``: the paper's three 32-px views (crop + AutoAugment + Cutout;
            two SimCLR views) and a crop/jitter/grayscale outlier view, per image on the CPU
            workers; ``patt_imagenet``: its 224-px ImageNet views (crop + jitter +
            RandAugment; two SimCLR views; outliers cropped at scale 0.2–1, jittered), on the
            CPU workers too (:func:`~oodlab.data.transforms.patt_imagenet_views`);
            ``batch``: the benchmark's own augmentation for every view (on the device for
            in-memory sets — the CPU-sized runs use this).
        image_size: side of the ``patt_*`` views; ``null``: the paper's (32 for
            ``patt_cifar``, 224 for ``patt_imagenet``).
    """

    oe_weight: float = 0.1
    tla_weight: float = 0.5
    temperature: float = 0.1
    tla_scale: float = 0.9
    normalize: bool = True
    projection_dim: int | None = None
    views: Literal["patt_cifar", "patt_imagenet", "batch"] = "patt_cifar"
    image_size: int | None = None

    def __post_init__(self) -> None:
        check(self.temperature > 0, f"method.options.temperature must be > 0: {self.temperature}")
        check(self.tla_scale > 0, f"method.options.tla_scale must be > 0: {self.tla_scale}")
        check(self.oe_weight >= 0, f"method.options.oe_weight must be >= 0: {self.oe_weight}")
        check(
            self.image_size is None or self.image_size > 0,
            f"method.options.image_size must be > 0 or null: {self.image_size}",
        )


@register_method(
    "patt",
    config_type=PATTOptions,
    needs=("aux",),
    paper="He et al. (PATT), AAAI 2025, arXiv:2408.06742",
    default_score="patt_energy",
)
class PATTRecipe(Recipe):
    """``½[ISAC(z(x²)) + ISAC(z(x³))] + λ2·TLA(f(x¹)) + λ1·OE(f(x_aux))``, one forward over
    ``[x¹ | x² | x³ | outliers]``; scored with the energy of the calibrated logits.

    The calibration vector is fitted after training by the ``patt_energy`` score from the
    cached training and outlier outputs (the *training* set, not the test split the official
    CIFAR code drew it from), weighting the tail once by default; ``patt_energy_official``
    reproduces the released code's double weighting (:mod:`oodlab.scores.patt_calibration`).

    Reference:
        He, Ye, Zhang, Wang & Chen, "Long-Tailed Out-of-Distribution Detection: Prioritizing
        Attention to Tail", AAAI 2025, arXiv:2408.06742, Eq. 9 and Sec. 3.4
        (long_tailed.md §3).

    Notes:
        Images enter the model in [0, 1] and the run's ``model.mean``/``model.std``
        normalise ID views and outliers alike; the official code normalises outliers with
        ImageNet statistics and ID with CIFAR statistics (long_tailed.md §3.8). The
        ``patt_imagenet`` views follow the benchmark instead when the model does not
        normalise (no ``model.mean``, as on ``imagenet_lt``, whose images are normalised by
        their transforms): then views and outliers carry ImageNet statistics.
    """

    views = 3
    uses_aux = True

    def __init__(self, options: PATTOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        if options.projection_dim:
            spec = {"out_dim": options.projection_dim, "batch_norm": True, "normalize": False}
            self.heads = {"projection": {"kind": "projection", **spec}}
        self.criterion: PATTLoss | None = None

    @property
    def logit_adjustment(self) -> float:
        """The TLA term ``CE(f/T_s + log π, y)`` adjusts the logits with strength 1."""
        return 1.0 if self.options.tla_weight > 0 else 0.0

    def prepare_model(self, model: nn.Module) -> nn.Module:
        dim = self.options.projection_dim or getattr(model, "feature_dim", None)
        if not isinstance(dim, int):
            raise DataError(f"{type(model).__name__} has no feature_dim; PATT needs one")
        o = self.options
        self.criterion = PATTLoss(
            self.num_classes, dim, self.prior, o.oe_weight, o.tla_weight, o.temperature,
            o.tla_scale, o.normalize,
        )  # fmt: skip
        return model

    def stages(self, config: RunConfig) -> list[Stage]:
        o = self.options
        if o.views == "batch":
            return [Stage("main", config.train, views=3, uses_aux=True)]
        if o.views == "patt_cifar":
            size = o.image_size or 32
            identity = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # the model normalises
            views, aux = patt_views(size, *identity), pascl_train(size)
        else:  # without model.mean/std, normalise here as imagenet_lt's own transforms do
            size, normalize = o.image_size or 224, config.model.mean is None
            stats = (IMAGENET_MEAN, IMAGENET_STD) if normalize else (None, None)
            views, aux = patt_imagenet_views(size, *stats), imagenet_train(size, normalize)
        return [
            Stage("main", config.train, views=3, uses_aux=True, transform=views, aux_transform=aux)
        ]

    def _loss_fn(self) -> PATTLoss:
        if self.criterion is None:
            raise DataError("PATT's loss is built with the model: call prepare_model first")
        return self.criterion

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if batch.x_aux is None:
            raise DataError("the patt method needs a batch of auxiliary outliers")
        heads = ("projection",) if self.options.projection_dim else ()
        out = forward_concat(net, [*batch.views, batch.x_aux], heads=heads)
        logits1, _, _, aux_logits = out.parts("logits")
        _, z2, z3, _ = out.parts(heads[0] if heads else "features")
        criterion = self._loss_fn().to(logits1.device)
        terms = criterion.terms(logits1, z2, z3, batch.y, aux_logits)
        o = self.options
        loss = terms["isac"] + o.tla_weight * terms["tla"] + o.oe_weight * terms["oe"]
        return loss, {k: v.detach() for k, v in terms.items()}

    def state_dict(self) -> dict[str, Any]:
        proco = self._loss_fn().proco
        return {"means": proco.means.cpu(), "counts": proco.counts.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        proco = self._loss_fn().proco
        proco.means.copy_(state["means"])
        proco.counts.copy_(state["counts"])
