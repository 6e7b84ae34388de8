"""Extra heads that methods attach beside a model's classifier, and the ASCOOD z-score wrapper.

A method declares the heads it needs in its recipe's ``prepare_model``; they live as
sub-modules of :class:`WithHeads`, whose ``extra_outputs(z)`` gives the per-sample outputs
that evaluation caches (e.g. ``bin_logit``). Scores and losses reach a head only through
these outputs, never by attribute name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError


class ProjectionHead(nn.Module):
    """MLP ``d → d → ReLU → out`` with L2-normalised output (PASCL / ImOOD contrastive head).

    Reference: Wang et al. (PASCL), ICML 2022, arXiv:2207.01160, Sec. 4; long_tailed.md §1.2.
    """

    def __init__(self, in_dim: int, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim)
        )

    def forward(self, z: Tensor) -> Tensor:
        return nn.functional.normalize(self.net(z), dim=1)


class BinaryDiscriminator(nn.Module):
    """One logit ``g(z)`` with ``σ(g) = P(ID | x)`` (ImOOD's extra output unit, §2.3)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z).squeeze(1)


class GroupSoftmaxHead(nn.Module):
    """MOS group-softmax classifier: ``Σ_g (n_g + 1)`` logits, "others" first in each group.

    Reference: Huang & Li (MOS), CVPR 2021, arXiv:2105.01879, Sec. 3.1; the head is
    zero-initialised as in the official code (synthesis_and_mos.md §3.3).

    Args:
        in_dim: feature dimension.
        group_sizes: logits per group, "others" included (each ≥ 2).
    """

    def __init__(self, in_dim: int, group_sizes: Sequence[int]) -> None:
        super().__init__()
        if not group_sizes or any(n < 2 for n in group_sizes):
            raise ConfigError(f"group_sizes must be integers >= 2, got {list(group_sizes)}")
        self.group_sizes = list(group_sizes)
        self.linear = nn.Linear(in_dim, sum(group_sizes))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z)


class ZScoreClassifier(nn.Module):
    """ASCOOD's classifier on standardised features: ``W · σ (h − mean(h)) / (std(h) + 1e-6) + b``.

    Mean and (unbiased) std are taken per sample over the feature dimensions; ``σ`` is a
    buffer (saved in checkpoints), 0.5 by default. Reference: Regmi, arXiv:2411.10794,
    Sec. 3 (z-score features, Table 8); synthesis_and_mos.md §1.2.
    """

    sigma: Tensor

    def __init__(self, linear: nn.Linear, sigma: float = 0.5) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def standardise(self, h: Tensor) -> Tensor:
        return self.sigma * (h - h.mean(dim=1, keepdim=True)) / (h.std(dim=1, keepdim=True) + 1e-6)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(self.standardise(h))


class WithHeads(nn.Module):
    """A backbone with its classifier plus named extra heads on the same features.

    ``features`` and ``head`` are the backbone's; ``extra_outputs(z)`` returns every extra
    head's output on ``z``; ``linear_head()`` is the backbone's linear classifier.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.extra_heads = nn.ModuleDict(dict(heads))

    def features(self, x: Tensor) -> Tensor:
        return self.backbone.features(x)  # type: ignore[operator]

    def head(self, z: Tensor) -> Tensor:
        return self.backbone.head(z)  # type: ignore[operator]

    def linear_head(self) -> nn.Linear | None:
        getter = getattr(self.backbone, "linear_head", None)
        return getter() if callable(getter) else None

    def extra_outputs(self, z: Tensor) -> dict[str, Tensor]:
        return {name: head(z) for name, head in self.extra_heads.items()}

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
