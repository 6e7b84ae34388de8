"""Extra heads that methods attach beside a model's classifier, and the model wrapper holding them.

A method declares the heads it needs by name and kind (``{"projection": {"out_dim": 128}}``;
see :class:`oodlab.train.recipes.Recipe`); :func:`attach_heads` builds them from
:data:`HEADS` and wraps the backbone in :class:`WithHeads`. ``extra_outputs(z)`` gives the
per-sample outputs that evaluation caches beside the logits (e.g. ``bin_logit``); scores and
losses reach a head only through these outputs, never by attribute name.

State-dict layout: heads are ``nn.Linear`` / ``nn.Sequential`` subclasses, so their keys are
those of the released PASCL / ImOOD / PATT checkpoints below the head's name
(``extra_heads.projection.0.weight`` ↔ ``projection.0.weight``; see
:mod:`oodlab.models.released`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.registry import Registry

HEADS: Registry[nn.Module] = Registry("head")
register_head = HEADS.register


@register_head("projection", paper="Wang et al. (PASCL), ICML 2022, arXiv:2207.01160")
class ProjectionHead(nn.Sequential):
    """MLP ``d → hidden → ReLU → out`` with L2-normalised output: the contrastive head.

    Reference: Wang et al. (PASCL), ICML 2022, arXiv:2207.01160, Sec. 4.2 (512→512→ReLU→128);
    long_tailed.md §1.2, §4.8. ``batch_norm=True, normalize=False`` gives PATT's ImageNet head
    ``Linear → BN1d → ReLU → Linear`` (§3.2). Keys match the released heads (``0.*``, ``2.*``,
    or ``0.*``, ``1.*``, ``3.*`` with batch norm).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 128,
        hidden: int | None = None,
        batch_norm: bool = False,
        normalize: bool = True,
    ) -> None:
        hidden = hidden or in_dim
        norm: list[nn.Module] = [nn.BatchNorm1d(hidden)] if batch_norm else []
        super().__init__(
            nn.Linear(in_dim, hidden), *norm, nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )
        self.normalize = normalize

    def forward(self, z: Tensor) -> Tensor:
        out = super().forward(z)
        return nn.functional.normalize(out, dim=1) if self.normalize else out


@register_head("bin_logit", paper="ImOOD bin_disc, arXiv:2407.16430; NPOS φ, arXiv:2303.02966")
class BinaryDiscriminator(nn.Sequential):
    """One ID-vs-OOD logit ``g(z)`` per sample, ``σ(g) = P(ID | x)``; output ``(N,)``.

    ``hidden=None`` is a linear unit (ImOOD's extra output, long_tailed.md §2.3); ``hidden=h``
    is NPOS's uncertainty MLP ``d → h → ReLU → 1`` (synthesis_and_mos.md §2.4, h = 128).
    """

    def __init__(self, in_dim: int, hidden: int | None = None) -> None:
        layers: list[nn.Module] = [nn.Linear(in_dim, 1)]
        if hidden:
            layers = [nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)]
        super().__init__(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return super().forward(z).squeeze(1)


@register_head("linear", paper="a linear map of the features (ImOOD's γ head lambda_linear)")
class LinearHead(nn.Linear):
    """``W z + b`` with ``out_dim`` outputs (default: one per class); e.g. ImOOD's γ head."""

    def __init__(
        self, in_dim: int, out_dim: int | None = None, num_classes: int = 0, zero_bias: bool = True
    ) -> None:
        out = out_dim or num_classes
        if out < 1:
            raise ConfigError("a linear head needs out_dim >= 1 (or the number of classes)")
        super().__init__(in_dim, out)
        if zero_bias:
            nn.init.zeros_(self.bias)


@register_head("imood_bias", paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430")
class ImOODBiasHead(nn.Module):
    """ImOOD's training-time heads: the γ head ``W_γ z + b_γ`` ``(N, C)`` and ``affine``.

    ``forward(z)`` gives the γ logits (``γ = exp(·)``, bias zero-initialised; the official
    ``lambda_linear``); ``affine`` is the learnable ``(a, b)`` of ``g = a·s(x) + b`` that
    turns a scalar detector score into a discriminator logit (the official ``aux_linear``,
    used in training only). Reference: long_tailed.md §2.2, §2.3, §2.5.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(in_dim, num_classes)
        nn.init.zeros_(self.gamma.bias)
        self.affine = nn.Linear(1, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.gamma(z)


@register_head("group_softmax", paper="Huang & Li (MOS), CVPR 2021, arXiv:2105.01879")
class GroupSoftmaxHead(nn.Linear):
    """MOS group-softmax classifier: ``Σ_g (n_g + 1)`` logits, "others" at index 0 of each group.

    Reference: Huang & Li, "MOS: Towards Scaling Out-of-distribution Detection for Large
    Semantic Space", CVPR 2021, arXiv:2105.01879, Sec. 3.1; zero-initialised as the official
    code (synthesis_and_mos.md §3.3). Used as a classifier (``classifier`` of a recipe).

    Args:
        in_dim: feature dimension.
        group_sizes: logits per group, "others" included (each ≥ 2).
    """

    def __init__(self, in_dim: int, group_sizes: Sequence[int], num_classes: int = 0) -> None:
        if not group_sizes or any(int(n) < 2 for n in group_sizes):
            raise ConfigError(f"group_sizes must be integers >= 2, got {list(group_sizes)}")
        super().__init__(in_dim, sum(int(n) for n in group_sizes))
        self.group_sizes = [int(n) for n in group_sizes]
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class ZScore(nn.Module):
    """ASCOOD's feature standardisation ``σ · (h − mean(h)) / (std(h) + 1e-6)``.

    Mean and unbiased std per sample over the feature dimensions; ``σ`` is a buffer (saved
    with the weights), 0.5 by default; no learnable affine. Reference: Regmi, "Going Beyond
    Conventional OOD Detection" (ASCOOD), arXiv:2411.10794, Sec. 3; synthesis_and_mos.md §1.2.
    """

    sigma: Tensor

    def __init__(self, sigma: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def forward(self, h: Tensor) -> Tensor:
        return self.sigma * (h - h.mean(dim=1, keepdim=True)) / (h.std(dim=1, keepdim=True) + 1e-6)


class WithHeads(nn.Module):
    """A backbone plus named extra heads on its features, and optional input/classifier changes.

    * ``features(x)``: the backbone's features of ``(x − mean) / std`` (when ``mean``/``std``
      are given; images stay in [0, 1] outside the model);
    * ``head(z)``: ``classifier(pre_head(z))``; ``classifier`` defaults to the backbone's head,
      ``pre_head`` to the identity (ASCOOD: :class:`ZScore`, so ``features`` stays the raw h);
    * ``head_input(z)``: the classifier's input ``pre_head(z)``, or ``None`` without a
      ``pre_head`` (evaluation caches it for the scores that rebuild logits, see
      :func:`oodlab.scores.base.head_features`);
    * ``extra_outputs(z)``: every extra head's output on the raw features;
    * ``linear_head()``: the final ``nn.Linear`` (for scores that need W and b).

    Args:
        backbone: a model with ``features`` and ``head``.
        heads: extra heads by name.
        classifier: replaces the backbone's head (whose parameters are then frozen).
        pre_head: a module applied to the features before the classifier.
        mean, std: per-channel input normalisation.
    """

    mean: Tensor | None
    std: Tensor | None

    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, nn.Module] | None = None,
        classifier: nn.Module | None = None,
        pre_head: nn.Module | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.extra_heads = nn.ModuleDict(dict(heads or {}))
        self.classifier = classifier
        self.pre_head = pre_head
        if (mean is None) != (std is None):
            raise ConfigError("give both model.mean and model.std, or neither")
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", None if mean is None else torch.tensor(mean).view(shape))
        self.register_buffer("std", None if std is None else torch.tensor(std).view(shape))
        if classifier is not None:
            replaced = _backbone_linear(backbone)
            if replaced is not None:
                replaced.requires_grad_(False)
        self.feature_dim = getattr(backbone, "feature_dim", None)

    @property
    def group_sizes(self) -> list[int] | None:
        return getattr(self.classifier, "group_sizes", None)

    def _normalise(self, x: Tensor) -> Tensor:
        if self.mean is None or self.std is None:
            return x
        return (x - self.mean) / self.std

    def features(self, x: Tensor) -> Tensor:
        return self.backbone.features(self._normalise(x))  # type: ignore[operator]

    def head(self, z: Tensor) -> Tensor:
        if self.pre_head is not None:
            z = self.pre_head(z)
        if self.classifier is not None:
            return self.classifier(z)
        return self.backbone.head(z)  # type: ignore[operator]

    def head_input(self, z: Tensor) -> Tensor | None:
        """What the classifier reads for the features ``z``; ``None`` when that is ``z``
        (without a ``pre_head``, the backbone's own ``head_input`` when it has one)."""
        if self.pre_head is not None:
            return self.pre_head(z)
        if self.classifier is None:
            own = getattr(self.backbone, "head_input", None)
            return own(z) if callable(own) else None
        return None

    def linear_head(self) -> nn.Linear | None:
        if isinstance(self.classifier, nn.Linear):
            return self.classifier
        return _backbone_linear(self.backbone)

    def extra_outputs(self, z: Tensor, names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Outputs of the extra heads ``names`` (default: all) on the features ``z``."""
        chosen = self.extra_heads.keys() if names is None else names
        return {name: self.extra_heads[name](z) for name in chosen}

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        getter = getattr(self.backbone, "intermediate_features", None)
        if not callable(getter):
            raise AttributeError(f"{type(self.backbone).__name__} has no intermediate_features")
        return getter(self._normalise(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _backbone_linear(backbone: nn.Module) -> nn.Linear | None:
    getter = getattr(backbone, "linear_head", None)
    layer = getter() if callable(getter) else None
    return layer if isinstance(layer, nn.Linear) else None


def build_head(spec: Mapping[str, Any], name: str, in_dim: int, num_classes: int) -> nn.Module:
    """A head from ``{"kind": ..., **options}`` (``kind`` defaults to ``name``)."""
    options = dict(spec)
    kind = str(options.pop("kind", name))
    factory = HEADS.get(kind).factory
    if kind in ("linear", "group_softmax", "imood_bias"):
        options.setdefault("num_classes", num_classes)
    try:
        return factory(in_dim, **options)
    except TypeError as exc:
        raise ConfigError(f"head {name!r} ({kind}): {exc}") from None


def attach_heads(
    backbone: nn.Module,
    num_classes: int,
    heads: Mapping[str, Mapping[str, Any]] | None = None,
    classifier: Mapping[str, Any] | None = None,
    zscore_sigma: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """``backbone`` with the declared extra heads (a :class:`WithHeads`), or unchanged if none.

    Args:
        backbone: a model with ``features``/``head`` and a ``feature_dim`` attribute.
        num_classes: ID classes (the default output size of ``linear`` heads).
        heads: extra heads, ``{name: {"kind": kind, **options}}``.
        classifier: a head spec replacing the classifier (e.g. ``{"kind": "group_softmax",
            "group_sizes": [...]}``).
        zscore_sigma: classify ``ZScore(σ)`` of the features (ASCOOD) when given.
        mean, std: input normalisation inside the model.
    """
    if not heads and classifier is None and zscore_sigma is None and mean is None and std is None:
        return backbone
    in_dim = getattr(backbone, "feature_dim", None)
    if not isinstance(in_dim, int):
        raise ConfigError(f"{type(backbone).__name__} has no integer feature_dim; cannot add heads")
    built = {
        name: build_head(spec, name, in_dim, num_classes) for name, spec in (heads or {}).items()
    }
    return WithHeads(
        backbone,
        built,
        classifier=None
        if classifier is None
        else build_head(classifier, "classifier", in_dim, num_classes),
        pre_head=None if zscore_sigma is None else ZScore(zscore_sigma),
        mean=mean,
        std=std,
    )
