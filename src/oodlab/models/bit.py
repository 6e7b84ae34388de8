"""BiT ResNet-v2 (Big Transfer): pre-activation bottlenecks, weight standardisation, GroupNorm."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.models.base import register_model

#: BiT's epsilon inside the weight standardisation (its TF and PyTorch code).
WS_EPS = 1e-10


class StdConv2d(nn.Conv2d):
    """A convolution whose kernel is standardised per output channel before use.

    ``w ← (w − mean(w)) / sqrt(var(w) + 1e-10)``, mean and (biased) variance over the input
    channels and kernel window of each output channel (Qiao et al., "Micro-Batch Training with
    Batch-Channel Normalization and Weight Standardization", arXiv:1903.10520).
    """

    def forward(self, x: Tensor) -> Tensor:
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
        weight = (self.weight - mean) / torch.sqrt(var + WS_EPS)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class PreActBottleneck(nn.Module):
    """GN → ReLU → 1×1 conv → GN → ReLU → 3×3 conv (stride) → GN → ReLU → 1×1 conv, plus the
    identity, or a strided 1×1 projection of the pre-activated input when the shape changes."""

    def __init__(self, c_in: int, c_out: int, c_mid: int, stride: int) -> None:
        super().__init__()
        self.gn1 = nn.GroupNorm(32, c_in)
        self.conv1 = StdConv2d(c_in, c_mid, 1, bias=False)
        self.gn2 = nn.GroupNorm(32, c_mid)
        self.conv2 = StdConv2d(c_mid, c_mid, 3, stride=stride, padding=1, bias=False)
        self.gn3 = nn.GroupNorm(32, c_mid)
        self.conv3 = StdConv2d(c_mid, c_out, 1, bias=False)
        self.downsample: StdConv2d | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = StdConv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.gn1(x))
        residual = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.gn2(out)))
        out = self.conv3(F.relu(self.gn3(out)))
        return out + residual


class BiTResNetV2(nn.Module):
    """BiT's ResNet-v2; ``features`` is the pooled 2048·w-d output of the final GN + ReLU.

    Root: 7×7/2 weight-standardised conv (padding 3), a constant pad of 1, 3×3/2 max-pool
    without padding. Four stages of pre-activation bottlenecks (widths 256, 512, 1024, 2048
    times ``width_factor``; the stride sits on the 3×3 conv of a stage's first unit). Head:
    GroupNorm(32) → ReLU → global average pool → linear (BiT's 1×1 conv), zero-initialised.

    Module names: ``root``, ``block{1..4}.{unit-1}.{gn1,conv1,gn2,conv2,gn3,conv3,downsample}``,
    ``norm``, ``fc``; :func:`bit_npz_to_state_dict` maps the official ``.npz`` onto them.

    Args:
        num_classes: outputs of ``fc``.
        in_channels: input channels of the root conv.
        block_units: units per stage (R50 ``[3, 4, 6, 3]``, R101 ``[3, 4, 23, 3]``).
        width_factor: channel multiplier (1 for "x1").
        zero_head: zero-initialise ``fc`` (BiT's fine-tuning head).

    Reference:
        Kolesnikov, Beyer, Zhai, Puigcerver, Yung, Gelly & Houlsby, "Big Transfer (BiT):
        General Visual Representation Learning", ECCV 2020, arXiv:1912.11370. MOS (Huang & Li,
        CVPR 2021) fine-tunes BiT-S-R101x1 (synthesis_and_mos.md §3.3).

    Notes:
        BiT's head is a 1×1 conv; here it is the equivalent ``nn.Linear`` on the pooled
        features (``head(z)``), as oodlab's scores read W and b from it.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        block_units: Sequence[int] = (3, 4, 23, 3),
        width_factor: int = 1,
        zero_head: bool = True,
    ) -> None:
        super().__init__()
        if len(block_units) != 4 or any(int(n) < 1 for n in block_units):
            raise ConfigError(f"block_units must be 4 positive counts, got {list(block_units)}")
        if int(width_factor) < 1:
            raise ConfigError(f"width_factor must be a positive integer, got {width_factor}")
        wf = int(width_factor)
        self.root = StdConv2d(in_channels, 64 * wf, 7, stride=2, padding=3, bias=False)
        self.pool = nn.Sequential(nn.ConstantPad2d(1, 0.0), nn.MaxPool2d(3, stride=2))
        c_in = 64 * wf
        for index, units in enumerate(block_units):
            c_mid, stride = 64 * wf * 2**index, 1 if index == 0 else 2
            stage = [PreActBottleneck(c_in, 4 * c_mid, c_mid, stride)]
            stage += [PreActBottleneck(4 * c_mid, 4 * c_mid, c_mid, 1) for _ in range(units - 1)]
            self.add_module(f"block{index + 1}", nn.Sequential(*stage))
            c_in = 4 * c_mid
        self.norm = nn.GroupNorm(32, c_in)
        self.feature_dim = c_in
        self.fc = nn.Linear(c_in, num_classes)
        if zero_head:
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def _stages(self) -> list[nn.Module]:
        return [getattr(self, f"block{i}") for i in range(1, 5)]

    def features(self, x: Tensor) -> Tensor:
        x = self.pool(self.root(x))
        for stage in self._stages():
            x = stage(x)
        return F.relu(self.norm(x)).mean(dim=(2, 3))

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        """Spatial means of the root (after pooling), of stages 1–3, and the pooled features."""
        x = self.pool(self.root(x))
        pooled = [x.mean(dim=(2, 3))]
        for stage in self._stages():
            x = stage(x)
            pooled.append(x.mean(dim=(2, 3)))
        pooled[-1] = F.relu(self.norm(x)).mean(dim=(2, 3))
        return pooled

    def head(self, z: Tensor) -> Tensor:
        return self.fc(z)

    def linear_head(self) -> nn.Linear:
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model(
    "bit_s_r101x1",
    paper="Kolesnikov et al., ECCV 2020, arXiv:1912.11370 (BiT-S-R101x1, MOS's backbone)",
)
def bit_s_r101x1(num_classes: int = 1000, in_channels: int = 3) -> BiTResNetV2:
    """BiT ResNet-v2-101 ×1 (the architecture of BiT-S-R101x1.npz)."""
    return BiTResNetV2(num_classes, in_channels, block_units=(3, 4, 23, 3), width_factor=1)


_UNIT = re.compile(
    r"resnet/block(\d+)/unit(\d+)/(?:(a)/proj/standardized_conv2d/kernel"
    r"|([abc])/standardized_conv2d/kernel|([abc])/group_norm/(gamma|beta))"
)
_TOP = {
    "resnet/root_block/standardized_conv2d/kernel": "root.weight",
    "resnet/group_norm/gamma": "norm.weight",
    "resnet/group_norm/beta": "norm.bias",
    "resnet/head/conv2d/kernel": "fc.weight",
    "resnet/head/conv2d/bias": "fc.bias",
}


def bit_key(key: str) -> str:
    """oodlab's name for an official BiT ``.npz`` key (the key itself when it has none)."""
    if key in _TOP:
        return _TOP[key]
    match = _UNIT.fullmatch(key)
    if match is None:
        return key
    block, unit, proj, conv, norm, leaf = match.groups()
    prefix = f"block{block}.{int(unit) - 1}."
    if proj:
        return prefix + "downsample.weight"
    if conv:
        return prefix + f"conv{'abc'.index(conv) + 1}.weight"
    return prefix + f"gn{'abc'.index(norm) + 1}." + ("weight" if leaf == "gamma" else "bias")


def bit_npz_to_state_dict(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    """The ``resnet/...`` arrays of an official BiT ``.npz`` as a :class:`BiTResNetV2` state dict.

    Conv kernels are stored HWIO and become OIHW; the head's ``(1, 1, D, C)`` kernel becomes
    the ``(C, D)`` weight of ``fc``. Keys outside ``resnet/`` are ignored; keys without a place
    keep their official names (so that loading reports them).
    """
    state: dict[str, Tensor] = {}
    for key in sorted(arrays):
        if not key.startswith("resnet/"):
            continue
        value = torch.from_numpy(np.array(arrays[key], dtype=np.float32))
        name = bit_key(key)
        if name == "fc.weight" and value.ndim == 4:
            value = value.flatten(0, 2).T
        elif value.ndim == 4:
            value = value.permute(3, 2, 0, 1)
        state[name] = value.contiguous()
    return state
