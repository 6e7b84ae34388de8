"""The released checkpoints' state dicts, written from the official architectures, and their
forward passes re-typed as plain functions of those tensors (no oodlab module involved).

Architectures, as facts of the official code:

* kuangliu CIFAR ResNet (OpenOOD ResNet18_32x32, PASCL, ImOOD, PATT, NPOS encoder): 3×3/1 stem
  conv (64) + BN + ReLU, no max-pool; stages of BasicBlocks (64, 128, 256, 512 channels,
  strides 1, 2, 2, 2); a block is ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with
  ``shortcut = bn(conv1×1(x))`` when the shape changes; global average pool; a linear layer.
* torchvision ResNet: 7×7/2 stem (pad 3) + BN + ReLU + 3×3/2 max-pool (pad 1); BasicBlocks or
  Bottlenecks (1×1, 3×3 with the stride, 1×1 ×4) with ``downsample = bn(conv1×1)``.
* CLIP ViT block (NPOS's CLIP tail): ``x + attn(ln_1(x))`` then ``x + c_proj(quick_gelu(c_fc(
  ln_2(x))))`` with ``quick_gelu(x) = x·σ(1.702x)``, multi-head attention with ``width // 64``
  heads (``in_proj`` = stacked q, k, v projections, softmax(q kᵀ / √d_head) v, ``out_proj``);
  then ``ln_post`` of the class token and ``@ proj``.
* BiT ResNet-v2 (MOS): weight-standardised convs; root 7×7/2 (pad 3), zero pad 1, 3×3/2
  max-pool; pre-activation bottleneck units ``gn1 → relu → (downsample of it | identity)``,
  ``conv1 → gn2 → relu → conv2 (stride) → gn3 → relu → conv3``; final GN + ReLU, mean, 1×1 conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BN_EPS = 1e-5


def _bn(state: dict, name: str, c: int, g: torch.Generator) -> None:
    state[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
    state[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
    state[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
    state[f"{name}.running_var"] = 1 + 0.1 * torch.rand(c, generator=g)
    state[f"{name}.num_batches_tracked"] = torch.tensor(7)


def _conv(state: dict, name: str, shape: tuple[int, ...], g: torch.Generator) -> None:
    fan_in = shape[1] * shape[2] * shape[3]
    state[name] = torch.randn(*shape, generator=g) * (2 / fan_in) ** 0.5


def _linear(state: dict, name: str, out: int, inp: int, g: torch.Generator) -> None:
    state[f"{name}.weight"] = torch.randn(out, inp, generator=g) / inp**0.5
    state[f"{name}.bias"] = 0.1 * torch.randn(out, generator=g)


def kuangliu_state(
    num_classes: int, blocks=(2, 2, 2, 2), classifier="fc", seed=0, base: int = 64
) -> dict:
    """A CIFAR ResNet's keys and shapes, the classifier named ``classifier`` (``base`` < 64:
    the same keys with narrower stages, for fast end-to-end tests)."""
    g = torch.Generator().manual_seed(seed)
    s: dict[str, Tensor] = {}
    _conv(s, "conv1.weight", (base, 3, 3, 3), g)
    _bn(s, "bn1", base, g)
    c_in = base
    for i, (n, c) in enumerate(zip(blocks, (base, 2 * base, 4 * base, 8 * base), strict=True)):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            stride = 2 if i > 0 and j == 0 else 1
            _conv(s, f"{p}.conv1.weight", (c, c_in, 3, 3), g)
            _bn(s, f"{p}.bn1", c, g)
            _conv(s, f"{p}.conv2.weight", (c, c, 3, 3), g)
            _bn(s, f"{p}.bn2", c, g)
            if stride != 1 or c_in != c:
                _conv(s, f"{p}.shortcut.0.weight", (c, c_in, 1, 1), g)
                _bn(s, f"{p}.shortcut.1", c, g)
            c_in = c
    if classifier:
        _linear(s, classifier, num_classes, 8 * base, g)
    return s


def _f_bn(x: Tensor, s: dict, name: str) -> Tensor:
    return F.batch_norm(
        x, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
        s[f"{name}.bias"], training=False, eps=BN_EPS,
    )  # fmt: skip


def kuangliu_features(s: dict, x: Tensor, prefix: str = "") -> Tensor:
    out = F.relu(_f_bn(F.conv2d(x, s[prefix + "conv1.weight"], padding=1), s, prefix + "bn1"))
    for i in range(4):
        j = 0
        while f"{prefix}layer{i + 1}.{j}.conv1.weight" in s:
            p = f"{prefix}layer{i + 1}.{j}"
            stride = 2 if i > 0 and j == 0 else 1
            y = F.relu(_f_bn(F.conv2d(out, s[p + ".conv1.weight"], stride=stride, padding=1),
                             s, p + ".bn1"))  # fmt: skip
            y = _f_bn(F.conv2d(y, s[p + ".conv2.weight"], padding=1), s, p + ".bn2")
            if p + ".shortcut.0.weight" in s:
                sc = _f_bn(F.conv2d(out, s[p + ".shortcut.0.weight"], stride=stride), s,
                           p + ".shortcut.1")  # fmt: skip
            else:
                sc = out
            out = F.relu(y + sc)
            j += 1
    return out.mean(dim=(2, 3))


def torchvision_state(num_classes: int, bottleneck: bool, seed: int = 0) -> dict:
    """torchvision ResNet-18 (BasicBlock) or ResNet-50 (Bottleneck) keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    s: dict[str, Tensor] = {}
    _conv(s, "conv1.weight", (64, 3, 7, 7), g)
    _bn(s, "bn1", 64, g)
    blocks = (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)
    expansion = 4 if bottleneck else 1
    c_in = 64
    for i, (n, c) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            stride = 2 if i > 0 and j == 0 else 1
            if bottleneck:
                _conv(s, f"{p}.conv1.weight", (c, c_in, 1, 1), g)
                _bn(s, f"{p}.bn1", c, g)
                _conv(s, f"{p}.conv2.weight", (c, c, 3, 3), g)
                _bn(s, f"{p}.bn2", c, g)
                _conv(s, f"{p}.conv3.weight", (c * 4, c, 1, 1), g)
                _bn(s, f"{p}.bn3", c * 4, g)
            else:
                _conv(s, f"{p}.conv1.weight", (c, c_in, 3, 3), g)
                _bn(s, f"{p}.bn1", c, g)
                _conv(s, f"{p}.conv2.weight", (c, c, 3, 3), g)
                _bn(s, f"{p}.bn2", c, g)
            if stride != 1 or c_in != c * expansion:
                _conv(s, f"{p}.downsample.0.weight", (c * expansion, c_in, 1, 1), g)
                _bn(s, f"{p}.downsample.1", c * expansion, g)
            c_in = c * expansion
    _linear(s, "fc", num_classes, c_in, g)
    return s


def torchvision_features(s: dict, x: Tensor, prefix: str = "") -> Tensor:
    out = F.relu(_f_bn(F.conv2d(x, s[prefix + "conv1.weight"], stride=2, padding=3), s,
                       prefix + "bn1"))  # fmt: skip
    out = F.max_pool2d(out, 3, 2, 1)
    bottleneck = prefix + "layer1.0.conv3.weight" in s
    for i in range(4):
        j = 0
        while f"{prefix}layer{i + 1}.{j}.conv1.weight" in s:
            p = f"{prefix}layer{i + 1}.{j}"
            stride = 2 if i > 0 and j == 0 else 1
            if bottleneck:
                y = F.relu(_f_bn(F.conv2d(out, s[p + ".conv1.weight"]), s, p + ".bn1"))
                y = F.relu(_f_bn(F.conv2d(y, s[p + ".conv2.weight"], stride=stride, padding=1),
                                 s, p + ".bn2"))  # fmt: skip
                y = _f_bn(F.conv2d(y, s[p + ".conv3.weight"]), s, p + ".bn3")
            else:
                y = F.relu(_f_bn(F.conv2d(out, s[p + ".conv1.weight"], stride=stride,
                                          padding=1), s, p + ".bn1"))  # fmt: skip
                y = _f_bn(F.conv2d(y, s[p + ".conv2.weight"], padding=1), s, p + ".bn2")
            if p + ".downsample.0.weight" in s:
                sc = _f_bn(F.conv2d(out, s[p + ".downsample.0.weight"], stride=stride), s,
                           p + ".downsample.1")  # fmt: skip
            else:
                sc = out
            out = F.relu(y + sc)
            j += 1
    return out.mean(dim=(2, 3))


def bit_state(outputs: int, units=(3, 4, 23, 3), seed: int = 0) -> dict:
    """BiT ResNetV2 (R101x1) keys of MOS's ``bit.pth.tar`` (``module.``-prefixed)."""
    g = torch.Generator().manual_seed(seed)
    s: dict[str, Tensor] = {}
    _conv(s, "root.conv.weight", (64, 3, 7, 7), g)
    c_in = 64
    for b, n in enumerate(units):
        mid = 64 * 2**b
        for u in range(1, n + 1):
            p = f"body.block{b + 1}.unit{u:02d}"
            for k, c in (("gn1", c_in), ("gn2", mid), ("gn3", mid)):
                s[f"{p}.{k}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
                s[f"{p}.{k}.bias"] = 0.1 * torch.randn(c, generator=g)
            _conv(s, f"{p}.conv1.weight", (mid, c_in, 1, 1), g)
            _conv(s, f"{p}.conv2.weight", (mid, mid, 3, 3), g)
            _conv(s, f"{p}.conv3.weight", (mid * 4, mid, 1, 1), g)
            if u == 1:
                _conv(s, f"{p}.downsample.weight", (mid * 4, c_in, 1, 1), g)
            c_in = mid * 4
    s["before_head.gn.weight"] = 1 + 0.1 * torch.randn(c_in, generator=g)
    s["before_head.gn.bias"] = 0.1 * torch.randn(c_in, generator=g)
    s["head.conv.weight"] = torch.randn(outputs, c_in, 1, 1, generator=g) * 0.05
    s["head.conv.bias"] = 0.1 * torch.randn(outputs, generator=g)
    return {f"module.{k}": v for k, v in s.items()}


def _std_conv(x: Tensor, w: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    var = ((w - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return F.conv2d(x, (w - mean) / torch.sqrt(var + 1e-10), stride=stride, padding=padding)


def bit_logits(state: dict, x: Tensor) -> Tensor:
    s = {k.removeprefix("module."): v for k, v in state.items()}
    out = F.max_pool2d(F.pad(_std_conv(x, s["root.conv.weight"], 2, 3), (1, 1, 1, 1)), 3, 2)
    for b in range(1, 5):
        u = 1
        while f"body.block{b}.unit{u:02d}.conv1.weight" in s:
            p = f"body.block{b}.unit{u:02d}."
            stride = 2 if b > 1 and u == 1 else 1
            pre = F.relu(F.group_norm(out, 32, s[p + "gn1.weight"], s[p + "gn1.bias"]))
            res = _std_conv(pre, s[p + "downsample.weight"], stride) if u == 1 else out
            y = _std_conv(pre, s[p + "conv1.weight"])
            y = F.relu(F.group_norm(y, 32, s[p + "gn2.weight"], s[p + "gn2.bias"]))
            y = _std_conv(y, s[p + "conv2.weight"], stride, 1)
            y = F.relu(F.group_norm(y, 32, s[p + "gn3.weight"], s[p + "gn3.bias"]))
            out = _std_conv(y, s[p + "conv3.weight"]) + res
            u += 1
    out = F.relu(F.group_norm(out, 32, s["before_head.gn.weight"], s["before_head.gn.bias"]))
    pooled = out.mean(dim=(2, 3), keepdim=True)
    return F.conv2d(pooled, s["head.conv.weight"], s["head.conv.bias"])[..., 0, 0]


def clip_tail_state(blocks: int = 2, width: int = 768, out_dim: int = 512, seed: int = 0) -> dict:
    """NPOS ``CLIP_ft.state_dict()``: ``transformer_resblocks.block{i}``, ``ln_post``, ``proj``,
    ``outlier_MLP.{0,2}`` (512 → 32 → 1)."""
    g = torch.Generator().manual_seed(seed)
    s: dict[str, Tensor] = {}

    def ln(name: str) -> None:
        s[f"{name}.weight"] = 1 + 0.1 * torch.randn(width, generator=g)
        s[f"{name}.bias"] = 0.1 * torch.randn(width, generator=g)

    for i in range(blocks):
        p = f"transformer_resblocks.block{i}"
        ln(f"{p}.ln_1")
        s[f"{p}.attn.in_proj_weight"] = torch.randn(3 * width, width, generator=g) / width**0.5
        s[f"{p}.attn.in_proj_bias"] = 0.1 * torch.randn(3 * width, generator=g)
        _linear(s, f"{p}.attn.out_proj", width, width, g)
        ln(f"{p}.ln_2")
        _linear(s, f"{p}.mlp.c_fc", 4 * width, width, g)
        _linear(s, f"{p}.mlp.c_proj", width, 4 * width, g)
    ln("ln_post")
    s["proj"] = torch.randn(width, out_dim, generator=g) / width**0.5
    _linear(s, "outlier_MLP.0", 32, out_dim, g)
    _linear(s, "outlier_MLP.2", 1, 32, g)
    return s


def _attention(x: Tensor, s: dict, p: str, heads: int) -> Tensor:
    n, length, width = x.shape
    qkv = x @ s[f"{p}.in_proj_weight"].T + s[f"{p}.in_proj_bias"]
    q, k, v = (t.reshape(n, length, heads, width // heads).transpose(1, 2)
               for t in qkv.chunk(3, dim=-1))  # fmt: skip
    weights = torch.softmax(q @ k.transpose(-1, -2) / (width // heads) ** 0.5, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(n, length, width)
    return out @ s[f"{p}.out_proj.weight"].T + s[f"{p}.out_proj.bias"]


def clip_tail_embedding(s: dict, tokens: Tensor) -> Tensor:
    """NPOS ``CLIP_ft.ft_blocks``: the tail blocks, ``ln_post`` of the class token, ``@ proj``."""
    width = tokens.shape[-1]

    def ln(x: Tensor, name: str) -> Tensor:
        return F.layer_norm(x, (width,), s[f"{name}.weight"], s[f"{name}.bias"], 1e-5)

    x, i = tokens, 0
    while f"transformer_resblocks.block{i}.ln_1.weight" in s:
        p = f"transformer_resblocks.block{i}"
        x = x + _attention(ln(x, f"{p}.ln_1"), s, f"{p}.attn", width // 64)
        h = ln(x, f"{p}.ln_2") @ s[f"{p}.mlp.c_fc.weight"].T + s[f"{p}.mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ s[f"{p}.mlp.c_proj.weight"].T + s[f"{p}.mlp.c_proj.bias"]
        i += 1
    return ln(x[:, 0], "ln_post") @ s["proj"]
