"""OpenOOD v1.5 checkpoints, torchvision-named ResNets and ASCOOD's net.

Layouts (read from ``Jingkang50/OpenOOD``, ``openood/networks``):

* ``openood_resnet18_32x32`` — ``ResNet18_32x32`` (CIFAR-10/100 ``.ckpt``, ASCOOD's CIFAR
  runs): the CIFAR ResNet keys with the classifier named ``fc`` (oodlab: ``linear``);
  OpenOOD normalises with the CIFAR statistics of the ID set.
* ``torchvision_resnet`` — ``ResNet18_224x224`` (ImageNet-200) and ``ResNet50`` (ImageNet-1k)
  subclass torchvision's ResNet, so their keys are torchvision's; ImageNet statistics.
* ``ascood`` — ``ASCOODNet``: ``backbone.<one of the two above>`` plus the buffer ``sigma``;
  logits ``fc(σ·zscore(h))`` (oodlab: :class:`~oodlab.models.heads.ZScore` as ``pre_head``,
  the features stay the raw ``h`` as in OpenOOD). CIFAR statistics for the 3×3-stem CIFAR
  net, ImageNet statistics for the torchvision backbones (synthesis_and_mos.md §1.3).

A ``module.`` prefix (``nn.DataParallel``) is dropped everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from oodlab.models.converters._resnet import (
    CIFAR_BODY,
    LINEAR,
    TORCHVISION_BODY,
    cifar_normalization,
    cifar_resnet,
    is_cifar_stem,
    torchvision_resnet,
)
from oodlab.models.converters.base import Converted, key_matcher, register_format, strip

OPENOOD = "Zhang et al. (OpenOOD v1.5), arXiv:2306.09301"


def _cifar(state: Mapping[str, Tensor], prefix: str = "") -> Converted:
    body = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    name, options = cifar_resnet(body)
    renamed = {("linear" + k[2:] if k.startswith("fc.") else k): v for k, v in body.items()}
    num_classes = int(body["fc.weight"].shape[0])
    return Converted(
        name, num_classes, renamed, model_options=options,
        normalization=cifar_normalization(num_classes),
    )  # fmt: skip


def _torchvision(state: Mapping[str, Tensor], prefix: str = "") -> Converted:
    body = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    name = torchvision_resnet(body)
    return Converted(name, int(body["fc.weight"].shape[0]), body, normalization="imagenet")


@register_format(
    "openood_resnet18_32x32",
    paper=OPENOOD,
    matches=key_matcher(CIFAR_BODY, rf"fc\.{LINEAR}"),
    layout="conv1, bn1, layer{1-4}.{j}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, fc",
)
def openood_resnet18_32x32(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """OpenOOD's ``ResNet18_32x32``: ``fc`` becomes oodlab's ``linear``."""
    return _cifar({strip(k): v for k, v in state.items()})


@register_format(
    "torchvision_resnet",
    paper="He et al., CVPR 2016, arXiv:1512.03385 (torchvision; OpenOOD ResNet18_224x224 / "
    "ResNet50)",
    matches=key_matcher(TORCHVISION_BODY, rf"fc\.{LINEAR}"),
    layout="conv1, bn1, layer{1-4}.{j}.{conv1..3,bn1..3,downsample.0,downsample.1}, fc",
)
def torchvision_format(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """torchvision's names are oodlab's ``resnet18`` / ``resnet50`` names."""
    return _torchvision({strip(k): v for k, v in state.items()})


@register_format(
    "ascood",
    paper="Regmi (ASCOOD), arXiv:2411.10794; OpenOOD ascood_net.py",
    matches=key_matcher(
        rf"backbone\.({CIFAR_BODY})",
        rf"backbone\.({TORCHVISION_BODY})",
        rf"backbone\.fc\.{LINEAR}",
        "sigma",
    ),
    layout="backbone.<ResNet18_32x32 or torchvision ResNet keys>, sigma (z-score scale)",
)
def ascood(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """``ASCOODNet``: the backbone's keys, and ``σ`` as the z-score ``pre_head``'s buffer.

    The default scores are those of the repo's test scripts (synthesis_and_mos.md §1.6):
    SCALE on the CIFAR nets; the protocols (``oodlab list protocols``) pick ODIN, Relation or
    NNGuide per dataset.
    """
    flat = {strip(k): v for k, v in state.items()}
    sigma = float(flat["sigma"])
    if is_cifar_stem(flat, "backbone."):
        converted = _cifar(flat, "backbone.")
        converted.scores = ["scale", "msp", "energy"]
    else:
        converted = _torchvision(flat, "backbone.")
        converted.scores = ["odin", "msp", "energy"]
    converted.state = {f"backbone.{k}": v for k, v in converted.state.items()}
    converted.state["pre_head.sigma"] = flat["sigma"].reshape(())
    converted.zscore_sigma = sigma
    converted.notes.append(f"ASCOOD z-score sigma = {sigma:g} (from the checkpoint)")
    return converted
