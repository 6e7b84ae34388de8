"""PASCL, ImOOD and PATT released checkpoints (long_tailed.md §1.2, §2.3, §3.2).

All three save ``model.state_dict()`` (``module.``-prefixed from ``nn.DataParallel``, PATT
without) of the CIFAR ResNet (classifier ``linear``) or of torchvision's ResNet-50
(classifier ``fc``), with extra heads beside the classifier:

* PASCL: ``projection.{0,2}`` (d → d → ReLU → 128) and an unused ``aux_linear`` (d → C);
* ImOOD: ``projection.{0,2}``, ``lambda_linear`` (the γ head, d → C), ``aux_linear``
  (Linear(1, 1)); with the ``bin_disc`` detector the classifier has ``C + 1`` outputs, the
  last being the ID-vs-OOD logit;
* PATT: the buffer ``finalScore`` (the calibration vector ``a``, 512-d) on CIFAR, and on
  ImageNet the contrastive head ``head.{0,1,3}`` (Linear → BN1d → ReLU → Linear).

oodlab names the heads as its methods do: ``projection``; ImOOD's γ head and affine are
``imood_bias.gamma`` / ``imood_bias.affine`` and its extra logit the ``bin_logit`` head.
Unused tensors (PASCL's ``aux_linear``, PATT's ``finalScore``) are returned as leftover.

Normalisation: PASCL and ImOOD feed CIFAR images in [0, 1] (no normalisation, §1.3); PATT
normalises CIFAR with mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010) (§3.3);
every ImageNet-LT model uses the ImageNet statistics. (The issue text says "CIFAR stats for
PASCL/ImOOD"; the official code, which these formats load, uses none.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor

from oodlab.models.converters._resnet import (
    BN,
    CIFAR_BODY,
    LINEAR,
    TORCHVISION_BODY,
    cifar_resnet,
    is_cifar_stem,
    torchvision_resnet,
)
from oodlab.models.converters.base import Converted, key_matcher, register_format, strip

_BODY = (CIFAR_BODY, rf"linear\.{LINEAR}", TORCHVISION_BODY, rf"fc\.{LINEAR}")
_PROJECTION = rf"projection\.[02]\.{LINEAR}"


def _requiring(any_of: Sequence[str], *patterns: str) -> Callable[[Sequence[str]], float]:
    """``key_matcher(*patterns)``, discounted unless a key of ``any_of`` is present (the
    format's signature), so that a bare ResNet is not claimed by every format."""
    base = key_matcher(*patterns)

    def matches(keys: Sequence[str]) -> float:
        share = base(keys)
        signed = any(strip(k).split(".")[0] in any_of for k in keys)
        return share if signed else share * 0.99

    matches.patterns = base.patterns  # type: ignore[attr-defined]
    return matches


def _backbone(flat: Mapping[str, Tensor]) -> tuple[str, dict[str, Any], str, str]:
    """(model, options, classifier name, normalisation family) of the ResNet in ``flat``."""
    if is_cifar_stem(flat):
        name, options = cifar_resnet(flat)
        return name, options, "linear", "cifar"
    return torchvision_resnet(flat), {}, "fc", "imagenet"


def _split(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(backbone tensors, head tensors) by the released names, ``module.`` stripped."""
    flat = {strip(k): v for k, v in state.items()}
    heads = ("projection", "lambda_linear", "aux_linear", "head", "finalScore")
    body = {k: v for k, v in flat.items() if k.split(".")[0] not in heads}
    return body, {k: v for k, v in flat.items() if k not in body}


def _sub(tensors: Mapping[str, Tensor], theirs: str, ours: str) -> dict[str, Tensor]:
    return {f"extra_heads.{ours}.{k[len(theirs) + 1 :]}": v for k, v in tensors.items()
            if k.startswith(theirs + ".")}  # fmt: skip


@register_format(
    "pascl",
    paper="Wang et al. (PASCL), ICML 2022, arXiv:2207.01160",
    matches=_requiring(("projection",), *_BODY, _PROJECTION, rf"aux_linear\.{LINEAR}"),
    layout="CIFAR ResNet (linear) or torchvision ResNet-50 (fc), projection.{0,2}, aux_linear",
)
def pascl(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """PASCL's stage-1 model (the OOD branch; the paper's score is MSP)."""
    body, extra = _split(state)
    name, model_options, _, family = _backbone(body)
    converted = _with_projection(name, model_options, body, extra, family)
    converted.leftover = {k: v for k, v in extra.items() if k.startswith("aux_linear.")}
    converted.scores = ["msp", "energy"]
    return converted


def _with_projection(
    name: str, model_options: dict[str, Any], body: dict[str, Tensor],
    extra: dict[str, Tensor], family: str,
) -> Converted:  # fmt: skip
    classifier = "linear" if family == "cifar" else "fc"
    num_classes = int(body[f"{classifier}.weight"].shape[0])
    heads: dict[str, dict[str, Any]] = {}
    state = dict(body)
    if "projection.0.weight" in extra:
        heads["projection"] = {
            "kind": "projection",
            "out_dim": int(extra["projection.2.weight"].shape[0]),
            "hidden": int(extra["projection.0.weight"].shape[0]),
        }
    if heads:
        state = {f"backbone.{k}": v for k, v in body.items()} | _sub(
            extra, "projection", "projection"
        )
    return Converted(
        name, num_classes, state, model_options=model_options, heads=heads,
        normalization=None if family == "cifar" else "imagenet",
    )  # fmt: skip


@register_format(
    "imood",
    paper="Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430",
    matches=_requiring(
        ("lambda_linear",),
        *_BODY,
        _PROJECTION,
        rf"lambda_linear\.{LINEAR}",
        rf"aux_linear\.{LINEAR}",
    ),
    layout="as PASCL, plus lambda_linear (d->C) and aux_linear (1->1); C+1 logits (bin_disc)",
)
def imood(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """ImOOD's model; with ``C + 1`` classifier outputs the last is the ``bin_logit`` head."""
    body, extra = _split(state)
    name, model_options, classifier, family = _backbone(body)
    weight, bias = body[f"{classifier}.weight"], body[f"{classifier}.bias"]
    classes = int(extra["lambda_linear.weight"].shape[0])
    converted = _with_projection(name, model_options, body, extra, family)
    converted.num_classes = classes
    state_out = {k if k.startswith(("backbone.", "extra_heads.")) else f"backbone.{k}": v
                 for k, v in converted.state.items()}  # fmt: skip
    state_out[f"backbone.{classifier}.weight"] = weight[:classes]
    state_out[f"backbone.{classifier}.bias"] = bias[:classes]
    converted.heads["imood_bias"] = {"kind": "imood_bias"}
    state_out |= _sub(extra, "lambda_linear", "imood_bias.gamma")
    if tuple(extra.get("aux_linear.weight", weight[:0]).shape) == (1, 1):
        state_out |= _sub(extra, "aux_linear", "imood_bias.affine")
    else:
        converted.from_model = [f"extra_heads.imood_bias.affine.{p}" for p in ("weight", "bias")]
    converted.scores = ["msp", "energy"]
    if len(weight) == classes + 1:
        converted.heads["bin_logit"] = {"kind": "bin_logit"}
        state_out["extra_heads.bin_logit.0.weight"] = weight[classes:]
        state_out["extra_heads.bin_logit.0.bias"] = bias[classes:]
        converted.scores = ["bin_disc", "msp", "energy"]
    converted.state = state_out
    return converted


@register_format(
    "patt",
    paper="He et al. (PATT), AAAI 2025, arXiv:2408.06742",
    matches=_requiring(
        ("finalScore", "head"), *_BODY, "finalScore", rf"head\.[03]\.{LINEAR}", rf"head\.1\.{BN}"
    ),
    layout="CIFAR ResNet (linear) + finalScore, or torchvision ResNet-50 (fc) + head.{0,1,3}",
)
def patt(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """PATT's model; ``finalScore`` (the calibration vector) is returned as leftover."""
    body, extra = _split(state)
    name, model_options, classifier, family = _backbone(body)
    num_classes = int(body[f"{classifier}.weight"].shape[0])
    converted = Converted(
        name, num_classes, body, model_options=model_options,
        normalization="cifar10_patt" if family == "cifar" else "imagenet",
        scores=["patt_energy", "msp", "energy"],
    )  # fmt: skip
    if "head.0.weight" in extra:
        converted.heads["projection"] = {
            "kind": "projection", "out_dim": int(extra["head.3.weight"].shape[0]),
            "hidden": int(extra["head.0.weight"].shape[0]), "batch_norm": True,
            "normalize": False,
        }  # fmt: skip
        converted.state = {f"backbone.{k}": v for k, v in body.items()} | _sub(
            extra, "head", "projection"
        )
    if "finalScore" in extra:
        converted.leftover["finalScore"] = extra["finalScore"]
    return converted
