"""NPOS's released CIFAR model (``deeplearning-wisc/npos``, ``CIFAR/models/resnet_outliers.py``).

``SupCEHeadResNet`` holds ``encoder`` (a CIFAR ResNet without classifier), ``fc`` (d → C),
``head`` (the projection MLP d → d → ReLU → 128, L2-normalised in training), ``mlp`` (the
uncertainty MLP ``φ``: d → 128 → ReLU → 1) and ``prototypes`` (C × 128). ``train_KNN.py``
wraps ``encoder``, ``fc`` and ``head`` in ``nn.DataParallel`` before saving
``{"epoch", "state_dict", "criterion_disp"}``, so the keys read ``encoder.module.*``,
``fc.module.*``, ``head.module.{0,2}.*``, ``mlp.{0,2}.*`` and ``prototypes``.

oodlab: ``backbone`` = the ResNet with ``linear`` ← ``fc``, extra heads ``projection`` ←
``head`` and ``bin_logit`` ← ``mlp`` (the heads of oodlab's ``npos`` method); the prototypes
are returned as leftover (they belong to the training loss). NPOS is tested with KNN on the
L2-normalised penultimate feature, ``k = 300`` (synthesis_and_mos.md §2.4).

Normalisation: the training statistics, CIFAR-10 ``(0.4914, 0.4822, 0.4465) / (0.2471,
0.2435, 0.2616)`` or CIFAR-100's. The repo's evaluation script normalises CIFAR-10 with std
``(0.2023, 0.1994, 0.2010)`` instead (synthesis_and_mos.md §2.4, "Evaluation-normalization
mismatch"); ``--normalize cifar10_patt`` reproduces that script.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from oodlab.models.converters._resnet import (
    CIFAR_BODY,
    LINEAR,
    cifar_normalization,
    cifar_resnet,
)
from oodlab.models.converters.base import Converted, key_matcher, register_format, strip

PARALLEL = r"(module\.)?"


@register_format(
    "npos",
    paper="Tao et al. (NPOS), ICLR 2023, arXiv:2303.02966",
    matches=key_matcher(
        rf"encoder\.{PARALLEL}({CIFAR_BODY})",
        rf"fc\.{PARALLEL}{LINEAR}",
        rf"head\.{PARALLEL}[02]\.{LINEAR}",
        rf"mlp\.[02]\.{LINEAR}",
        "prototypes",
    ),
    layout="encoder.module.<CIFAR ResNet>, fc.module, head.module.{0,2}, mlp.{0,2}, prototypes",
)
def npos(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """NPOS's ``SupCEHeadResNet`` as oodlab's ``npos`` model (backbone + projection + φ)."""
    flat: dict[str, Tensor] = {}
    for key, value in state.items():
        top, _, rest = strip(key).partition(".")
        flat[f"{top}.{rest.removeprefix('module.')}" if rest else top] = value
    encoder = {k[len("encoder.") :]: v for k, v in flat.items() if k.startswith("encoder.")}
    name, model_options = cifar_resnet(encoder)
    num_classes = int(flat["fc.weight"].shape[0])
    renamed = {f"backbone.{k}": v for k, v in encoder.items()}
    renamed |= {f"backbone.linear.{p}": flat[f"fc.{p}"] for p in ("weight", "bias")}
    for ours, theirs in (("projection", "head"), ("bin_logit", "mlp")):
        for index in (0, 2):
            for p in ("weight", "bias"):
                renamed[f"extra_heads.{ours}.{index}.{p}"] = flat[f"{theirs}.{index}.{p}"]
    proj_dim = int(flat["head.2.weight"].shape[0])
    hidden = int(flat["head.0.weight"].shape[0])
    heads: dict[str, dict[str, Any]] = {
        "projection": {"kind": "projection", "out_dim": proj_dim, "hidden": hidden},
        "bin_logit": {"kind": "bin_logit", "hidden": int(flat["mlp.0.weight"].shape[0])},
    }
    leftover = {"prototypes": flat["prototypes"]} if "prototypes" in flat else {}
    return Converted(
        name, num_classes, renamed, model_options=model_options, heads=heads,
        leftover=leftover, normalization=cifar_normalization(num_classes),
        scores=["knn:k=300", "msp", "energy"],
    )  # fmt: skip
