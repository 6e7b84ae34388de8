"""A small, fast convolutional network for CPU benchmarks (Fashion-MNIST-sized inputs)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.models import register_model


def _block(c_in: int, c_out: int, norm: str) -> list[nn.Module]:
    if norm == "none":
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register_model("small_cnn", paper="oodlab CPU baseline (3 conv blocks, ~100k parameters)")
class SmallCNN(nn.Module):
    """Three conv–BN–ReLU blocks (32, 64, 128 channels; max-pool after the first two),
    global average pooling to a 128-d feature, and a linear classifier.

    Args:
        num_classes: number of ID classes.
        in_channels: 1 for grayscale, 3 for RGB.
        width: channel multiplier.
        norm: ``"batch"`` (BatchNorm) or ``"none"`` (no normalisation, so that a DDP run
            equals the single-process run exactly; the DDP test uses it).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        norm: Literal["batch", "none"] = "batch",
    ) -> None:
        super().__init__()
        if norm not in ("batch", "none"):
            raise ConfigError(f"norm must be 'batch' or 'none', got {norm!r}")
        c1, c2, c3 = (max(8, int(c * width)) for c in (32, 64, 128))
        self.body = nn.Sequential(
            *_block(in_channels, c1, norm),
            nn.MaxPool2d(2),
            *_block(c1, c2, norm),
            nn.MaxPool2d(2),
            *_block(c2, c3, norm),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = c3
        self.linear = nn.Linear(c3, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def head(self, z: Tensor) -> Tensor:
        return self.linear(z)

    def linear_head(self) -> nn.Linear:
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
