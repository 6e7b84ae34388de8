"""Key patterns and architecture inference shared by the ResNet-based released formats.

Two layouts recur: the "kuangliu pytorch-cifar" CIFAR ResNet (``conv1, bn1,
layer{i}.{j}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}``; OpenOOD's ResNet18_32x32, PASCL,
ImOOD, PATT, NPOS, ASCOOD's CIFAR net) and torchvision's ResNet (``conv1, bn1,
layer{i}.{j}.{conv1..3,bn1..3,downsample.0,downsample.1}, fc``; OpenOOD's ResNet18_224x224
and ResNet-50, ASCOOD's Waterbirds / CelebA / Cars / Aircraft nets, ImageNet-LT models).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from oodlab.errors import CheckpointError

BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
CIFAR_BODY = (
    rf"conv1\.weight|bn1\.{BN}|layer[1-4]\.\d+\.(conv[12]\.weight|bn[12]\.{BN}"
    rf"|shortcut\.0\.weight|shortcut\.1\.{BN})"
)
TORCHVISION_BODY = (
    rf"conv1\.weight|bn1\.{BN}|layer[1-4]\.\d+\.(conv[123]\.weight|bn[123]\.{BN}"
    rf"|downsample\.0\.weight|downsample\.1\.{BN})"
)
LINEAR = r"(weight|bias)"

_CIFAR_DEPTHS: dict[tuple[int, ...], str] = {
    (2, 2, 2, 2): "resnet18_cifar",
    (3, 4, 6, 3): "resnet34_cifar",
}
_TORCHVISION: dict[tuple[int | bool, ...], str] = {
    (2, 2, 2, 2, False): "resnet18",
    (3, 4, 6, 3, True): "resnet50",
}


def blocks_per_stage(state: Mapping[str, Tensor], prefix: str = "") -> tuple[int, ...]:
    """Residual blocks in each of the four stages, counted from ``layer{i}.{j}.conv1`` keys."""
    pattern = re.compile(re.escape(prefix) + r"layer([1-4])\.(\d+)\.conv1\.weight")
    counts = [0, 0, 0, 0]
    for key in state:
        match = pattern.fullmatch(key)
        if match:
            stage, block = int(match.group(1)) - 1, int(match.group(2))
            counts[stage] = max(counts[stage], block + 1)
    return tuple(counts)


def cifar_resnet(state: Mapping[str, Tensor], prefix: str = "") -> tuple[str, dict[str, float]]:
    """The oodlab model (``resnet18_cifar`` / ``resnet34_cifar``) and ``width`` of a CIFAR
    ResNet state dict whose keys start with ``prefix``."""
    blocks = blocks_per_stage(state, prefix)
    name = _CIFAR_DEPTHS.get(blocks)
    if name is None:
        raise CheckpointError(
            f"a CIFAR ResNet with {list(blocks)} blocks per stage is not an oodlab model "
            f"(known: {sorted(map(list, _CIFAR_DEPTHS))})"
        )
    width = state[prefix + "conv1.weight"].shape[0] / 64
    return name, ({} if width == 1 else {"width": width})


def torchvision_resnet(state: Mapping[str, Tensor], prefix: str = "") -> str:
    """The oodlab model (``resnet18`` / ``resnet50``) of a torchvision-named ResNet."""
    blocks = blocks_per_stage(state, prefix)
    bottleneck = prefix + "layer1.0.conv3.weight" in state
    name = _TORCHVISION.get((*blocks, bottleneck))
    if name is None:
        kind = "Bottleneck" if bottleneck else "BasicBlock"
        raise CheckpointError(
            f"a torchvision ResNet with {list(blocks)} {kind}s per stage is not an oodlab "
            "model (known: ResNet-18, ResNet-50)"
        )
    return name


def is_cifar_stem(state: Mapping[str, Tensor], prefix: str = "") -> bool:
    """A 3×3 stem (CIFAR ResNet) rather than torchvision's 7×7."""
    return tuple(state[prefix + "conv1.weight"].shape[-2:]) == (3, 3)


def cifar_normalization(
    num_classes: int, cifar100: str = "cifar100", cifar10: str = "cifar10"
) -> str:
    """CIFAR-10 statistics for 10 classes, CIFAR-100 statistics otherwise."""
    return cifar10 if num_classes == 10 else cifar100
