"""torchvision ResNets behind oodlab's ``features`` / ``head`` interface (trained from scratch)."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision import models

from oodlab.models import register_model


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet whose pooled penultimate output is ``features`` and ``fc`` the head.

    Module names are torchvision's (``conv1 ... layer4, fc``), so ImageNet-LT checkpoints of
    PASCL / ImOOD / PATT (ResNet-50, long_tailed.md §1.2) load after stripping ``module.``.
    No weights are downloaded: models start from scratch, or from a state dict the user gives.
    """

    def __init__(self, net: models.ResNet, in_channels: int = 3) -> None:
        super().__init__()
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 7, 2, 3, bias=False)
        self.net = net
        self.feature_dim = net.fc.in_features

    def features(self, x: Tensor) -> Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return n.avgpool(x).flatten(1)

    def head(self, z: Tensor) -> Tensor:
        return self.net.fc(z)

    def linear_head(self) -> nn.Linear:
        return self.net.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model("resnet50", paper="He et al., CVPR 2016, arXiv:1512.03385 (torchvision)")
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> TorchvisionResNet:
    return TorchvisionResNet(models.resnet50(weights=None, num_classes=num_classes), in_channels)


@register_model("resnet18", paper="He et al., CVPR 2016, arXiv:1512.03385 (torchvision)")
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> TorchvisionResNet:
    return TorchvisionResNet(models.resnet18(weights=None, num_classes=num_classes), in_channels)
