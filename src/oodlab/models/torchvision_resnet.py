"""torchvision ResNets behind oodlab's ``features`` / ``head`` interface (trained from scratch)."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import resnet

from oodlab.models.base import register_model


class TorchvisionResNet(resnet.ResNet):
    """torchvision's ResNet whose pooled penultimate output is ``features`` and ``fc`` the head.

    A subclass, not a wrapper: module names are torchvision's (``conv1, bn1, layer1..4, fc``,
    shortcut ``downsample.0/1``), so the ImageNet-LT checkpoints of PASCL / ImOOD / PATT
    (ResNet-50, long_tailed.md §1.2) load after stripping ``module.``. No weights are
    downloaded: models start from scratch (``weights=None``), or from a state dict you give.

    Reference: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    arXiv:1512.03385.
    """

    def __init__(
        self,
        block: type[resnet.BasicBlock | resnet.Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_channels: int = 3,
    ) -> None:
        super().__init__(block, layers, num_classes=num_classes)
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.feature_dim = self.fc.in_features

    def features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        """Spatial means of the stem and of each stage's output."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        pooled = [x.mean(dim=(2, 3))]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            pooled.append(x.mean(dim=(2, 3)))
        return pooled

    def head(self, z: Tensor) -> Tensor:
        return self.fc(z)

    def linear_head(self) -> nn.Linear:
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model("resnet50", paper="He et al., CVPR 2016, arXiv:1512.03385 (torchvision)")
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> TorchvisionResNet:
    return TorchvisionResNet(resnet.Bottleneck, [3, 4, 6, 3], num_classes, in_channels)


@register_model("resnet18", paper="He et al., CVPR 2016, arXiv:1512.03385 (torchvision)")
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> TorchvisionResNet:
    return TorchvisionResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes, in_channels)
