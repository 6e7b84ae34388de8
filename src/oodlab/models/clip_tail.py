"""The last residual attention blocks of CLIP's ViT image encoder, on intermediate tokens.

NPOS's CLIP pipeline (``deeplearning-wisc/npos``, ``CLIP_based/OOD/CLIP/CLIP_ft.py``) freezes
the first ``layers`` of CLIP ViT-B/16's 12 blocks, caches their output tokens, and fine-tunes
the remaining ``12 − layers`` blocks, ``ln_post`` and ``proj``; the classifier is the cosine
with the prompt-ensembled text embeddings of the class names. This module is that tail:
``features(tokens)`` is ``ln_post(blocks(tokens)[:, 0]) @ proj`` (the class token's image
embedding) and ``head`` a linear layer whose rows hold the class (text) embeddings.

Reference:
    Radford et al. (CLIP), ICML 2021, arXiv:2103.00020 (the ViT encoder: pre-LayerNorm
    residual blocks ``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))``, ``mlp = c_proj ∘ QuickGELU ∘
    c_fc`` with a 4× hidden width, QuickGELU ``x·σ(1.702x)``); Tao, Du, Zhu & Li (NPOS),
    ICLR 2023, arXiv:2303.02966, Sec. 4 (CLIP-B/16 fine-tuning of the last blocks).

Notes:
    Inputs are token sequences ``(N, L, width)`` (the class token first), batch first; CLIP
    runs its blocks sequence first, which gives the same numbers. ``head`` is ``z·w_c`` (plus
    a bias, zero for released checkpoints); the cosine that MCM thresholds is computed by the
    ``mcm`` score from the features and the head's rows.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError, DataError
from oodlab.models.base import register_model


class QuickGELU(nn.Module):
    """CLIP's GELU approximation ``x·σ(1.702x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """One pre-LayerNorm transformer block of CLIP (its parameter names: ``ln_1``, ``attn``,
    ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), batch first."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, 4 * width)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(4 * width, width)),
                ]
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


@register_model(
    "clip_vit_tail",
    paper="CLIP ViT (Radford et al., arXiv:2103.00020) last blocks, as NPOS fine-tunes them",
)
class CLIPViTTail(nn.Module):
    """The last ``blocks`` blocks of a CLIP ViT, ``ln_post``, ``proj`` and a class-embedding
    head, on intermediate tokens ``(N, L, width)``.

    Args:
        num_classes: number of ID classes (rows of the head).
        in_channels: unused (the inputs are tokens, not images); kept for the registry.
        width: token width (ViT-B/16: 768).
        heads: attention heads (CLIP: ``width // 64``).
        blocks: fine-tuned blocks (NPOS: ``12 − layers``).
        out_dim: image-embedding width (ViT-B/16: 512).
    """

    def __init__(
        self,
        num_classes: int = 100,
        in_channels: int = 3,
        width: int = 768,
        heads: int = 12,
        blocks: int = 2,
        out_dim: int = 512,
    ) -> None:
        super().__init__()
        for name, value in (("width", width), ("heads", heads), ("blocks", blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if width % heads:
            raise ConfigError(f"width ({width}) must be a multiple of heads ({heads})")
        self.width = width
        self.blocks = nn.Sequential(*(ResidualAttentionBlock(width, heads) for _ in range(blocks)))
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, out_dim) * width**-0.5)
        self.linear = nn.Linear(out_dim, num_classes)
        self.feature_dim = out_dim

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.width:
            raise DataError(
                f"clip_vit_tail takes intermediate CLIP tokens (N, L, {self.width}), class token "
                f"first, got a tensor of shape {tuple(x.shape)}"
            )
        tokens = self.blocks(x)
        return self.ln_post(tokens[:, 0]) @ self.proj

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        return [self.features(x)]

    def head(self, z: Tensor) -> Tensor:
        return self.linear(z)

    def linear_head(self) -> nn.Linear:
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
