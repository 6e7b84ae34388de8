"""Pre-extracted embeddings for feature-space training (NPOS's CLIP pipeline): file reading,
shape checks, and the small trainable tail that fine-tunes them.

Files are ``.npy`` (read with ``numpy.load(allow_pickle=False)``) or ``.pt`` holding one
tensor (read with ``torch.load(weights_only=True)``): features ``(N, D)`` float, labels
``(N,)`` integers in ``[0, C)``, class (text) embeddings ``(C, D_out)`` float.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from oodlab.errors import DataError


def load_array(path: str | Path, what: str) -> Tensor:
    """The tensor stored in ``path`` (``.npy`` or ``.pt``); one-line ``DataError`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist; pass an existing .npy or .pt file")
    try:
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        if path.suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(value, Tensor):
                raise DataError(
                    f"{what} file {path} holds a {type(value).__name__}, expected one tensor"
                )
            return value
    except DataError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot read {what} file {path}: {first}") from None
    raise DataError(f"{what} file {path} must end in .npy or .pt, got {path.suffix!r}")


def load_features(path: str | Path, what: str, dim: int | None = None) -> Tensor:
    """Float32 ``(N, D)`` features; ``dim`` checks ``D``."""
    x = load_array(path, what)
    if x.ndim != 2 or not x.dtype.is_floating_point or len(x) == 0:
        raise DataError(
            f"{what} {path} must be a non-empty (N, D) float array, got {tuple(x.shape)} {x.dtype}"
        )
    if dim is not None and x.shape[1] != dim:
        raise DataError(
            f"{what} {path} has dimension {x.shape[1]}, expected {dim} (as the training features)"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} {path} contains NaN or infinite values")
    return x.float()


def load_labels(path: str | Path, what: str, n: int, num_classes: int) -> Tensor:
    """Int64 ``(n,)`` labels in ``[0, num_classes)``."""
    y = load_array(path, what)
    if y.ndim != 1 or len(y) != n or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataError(
            f"{what} {path} must be ({n},) integers (one per feature row), got "
            f"{tuple(y.shape)} {y.dtype}"
        )
    y = y.long()
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{what} {path} must lie in [0, {num_classes}) (one class embedding "
            f"per class), got [{int(y.min())}, {int(y.max())}]"
        )
    return y


@dataclass
class FeatureSplit:
    """Features ``(N, D)`` and, for labelled splits, labels ``(N,)``."""

    features: Tensor
    labels: Tensor | None = None


class FeatureTail(nn.Module):
    """The trainable last layers on frozen embeddings: residual MLP blocks, then a projection.

    ``x ← x + W₂ ReLU(W₁ LN(x))`` per block (``W₂`` zero-initialised, so training starts
    from the given embeddings), then ``LN`` and a bias-free projection ``D → D_out``
    (identity-initialised when ``D = D_out``), in the roles of CLIP's last blocks, ``ln_post``
    and ``proj``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, blocks: int = 1, hidden: int | None = None
    ) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(in_dim),
                nn.Linear(in_dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, in_dim),
            )
            for _ in range(blocks)
        )
        for block in self.blocks.modules():
            if isinstance(block, nn.Sequential):
                nn.init.zeros_(block[-1].weight)  # type: ignore[arg-type]
                nn.init.zeros_(block[-1].bias)  # type: ignore[arg-type]
        # Same-size tails skip the LayerNorm so that an untrained tail is the identity map.
        self.norm: nn.Module = nn.LayerNorm(in_dim) if in_dim != out_dim else nn.Identity()
        self.proj = nn.Linear(in_dim, out_dim, bias=False)
        if in_dim == out_dim:
            nn.init.eye_(self.proj.weight)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.proj(self.norm(x))
