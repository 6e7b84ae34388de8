"""CIFAR-style ResNet-18/34: 3×3 stem, no max-pool, 512-d features (the PASCL/ImOOD/PATT model).

Module names follow the "kuangliu pytorch-cifar" layout (``conv1, bn1, layer1..4, linear``,
blocks with ``conv1, bn1, conv2, bn2, shortcut.0/1``), so the released checkpoints of
PASCL, ImOOD and PATT load with at most a prefix change
(:func:`oodlab.models.released.load_released_state_dict`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.models.base import register_model


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers and a residual connection (1×1 conv + BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """ResNet with BasicBlocks for small images.

    Reference:
        He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
        arXiv:1512.03385; the CIFAR variant of long_tailed.md §1.2 (3×3 stride-1 stem, no
        max-pool, stages of 64/128/256/512 channels with strides 1/2/2/2).

    Args:
        blocks: BasicBlocks per stage (``(2, 2, 2, 2)``: ResNet-18; ``(3, 4, 6, 3)``: ResNet-34).
        num_classes: outputs of the linear classifier.
        in_channels: 3 for RGB, 1 for grayscale (Fashion-MNIST).
        width: channel multiplier (1.0: 64/128/256/512; features are ``512·width``-d).

    Notes:
        Global average pooling (adaptive) replaces ``AvgPool2d(4)`` so that 28×28 inputs work;
        on 32×32 inputs the two are identical.
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        widths = [max(8, int(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c_in = [], widths[0]
        for i, (n, c_out) in enumerate(zip(blocks, widths)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(n):
                stage.append(BasicBlock(c_in, c_out, stride if j == 0 else 1))
                c_in = c_out
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_dim = widths[3]
        self.linear = nn.Linear(widths[3], num_classes)

    def features(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return out.mean(dim=(2, 3))

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        """Spatial means of the stem and of each stage's output: ``[(N, 64), ..., (N, 512)]``."""
        out = torch.relu(self.bn1(self.conv1(x)))
        pooled = [out.mean(dim=(2, 3))]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            out = stage(out)
            pooled.append(out.mean(dim=(2, 3)))
        return pooled

    def head(self, z: Tensor) -> Tensor:
        return self.linear(z)

    def linear_head(self) -> nn.Linear:
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model("resnet18_cifar", paper="He et al., CVPR 2016, arXiv:1512.03385 (CIFAR variant)")
def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNetCIFAR:
    return ResNetCIFAR((2, 2, 2, 2), num_classes, in_channels, width)


@register_model("resnet34_cifar", paper="He et al., CVPR 2016, arXiv:1512.03385 (CIFAR variant)")
def resnet34_cifar(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNetCIFAR:
    return ResNetCIFAR((3, 4, 6, 3), num_classes, in_channels, width)
