"""A small, fast convolutional network for CPU benchmarks (Fashion-MNIST-sized inputs)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.models.base import register_model

Norm = Literal["batch", "group", "none"]


def _block(c_in: int, c_out: int, norm: Norm) -> nn.Sequential:
    if norm == "none":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True))
    layer = nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(min(8, c_out), c_out)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), layer, nn.ReLU(True))


@register_model("small_cnn", paper="oodlab CPU baseline (3 conv blocks, ~100k parameters)")
class SmallCNN(nn.Module):
    """Three conv–norm–ReLU blocks (32, 64, 128 channels; 2×2 max-pool after the first two),
    global average pooling to a 128-d feature, and a linear classifier (~94k parameters).

    Args:
        num_classes: number of ID classes.
        in_channels: 1 for grayscale, 3 for RGB.
        width: channel multiplier.
        norm: ``"batch"`` (BatchNorm), ``"group"`` (GroupNorm, 8 groups) or ``"none"``. Under
            DDP, BatchNorm normalises with each process's share of the batch, so only
            ``"group"`` and ``"none"`` train exactly as one process on the global batch (the
            2-process test uses ``"none"``).
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0, norm: Norm = "batch"
    ) -> None:
        super().__init__()
        if norm not in ("batch", "group", "none"):
            raise ConfigError(f"norm must be 'batch', 'group' or 'none', got {norm!r}")
        c1, c2, c3 = (max(8, int(c * width)) for c in (32, 64, 128))
        self.block1 = _block(in_channels, c1, norm)
        self.block2 = _block(c1, c2, norm)
        self.block3 = _block(c2, c3, norm)
        self.pool = nn.MaxPool2d(2)
        self.feature_dim = c3
        self.linear = nn.Linear(c3, num_classes)

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        """Spatial means of the three blocks' outputs: ``[(N, 32w), (N, 64w), (N, 128w)]``."""
        a = self.block1(x)
        b = self.block2(self.pool(a))
        c = self.block3(self.pool(b))
        return [a.mean(dim=(2, 3)), b.mean(dim=(2, 3)), c.mean(dim=(2, 3))]

    def features(self, x: Tensor) -> Tensor:
        out = self.block3(self.pool(self.block2(self.pool(self.block1(x)))))
        return out.mean(dim=(2, 3))

    def head(self, z: Tensor) -> Tensor:
        return self.linear(z)

    def linear_head(self) -> nn.Linear:
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
