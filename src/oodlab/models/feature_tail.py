"""``feature_tail``: a classifier over stored embeddings (NPOS's CLIP pipeline, on the one loop).

``features(x)`` is the fine-tuned tail's output ``e = tail(x)`` (:class:`FeatureTail`: residual
MLP blocks and a projection, in the roles of CLIP's last blocks and ``proj``); ``head(z)`` the
cosine similarities of ``z`` to the class (text) embeddings, a frozen bias-free linear layer
on ``head_input(z) = z / ‖z‖`` whose rows are the L2-normalised class embeddings. So the
logits are the cosines the NPOS pipeline classifies with, ``features`` stay the raw ``e``
its outlier synthesis and ``φ`` read, and the scores that rebuild logits from ``W`` (MCM with
the rows of ``W`` as class embeddings, ReAct, ViM, …) work on the cosine classifier's input.

Reference: Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966, Sec. 4 (CLIP fine-tuning).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.models.base import register_model
from oodlab.scores._features import l2_normalize
from oodlab.synthesis.feature_data import FeatureTail, load_features


class FeatureTailClassifier(nn.Module):
    """The tail over embeddings plus the frozen cosine classifier of the class embeddings."""

    def __init__(
        self, in_dim: int, class_embeddings: Tensor, blocks: int = 1, hidden: int | None = None
    ) -> None:
        super().__init__()
        out_dim = class_embeddings.shape[1]
        self.tail = FeatureTail(in_dim, out_dim, blocks, hidden)
        self.classifier = nn.Linear(out_dim, len(class_embeddings), bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(l2_normalize(class_embeddings.float()))
        self.classifier.requires_grad_(False)
        self.feature_dim = out_dim

    def features(self, x: Tensor) -> Tensor:
        return self.tail(x.flatten(1))

    def head_input(self, z: Tensor) -> Tensor:
        return l2_normalize(z)

    def head(self, z: Tensor) -> Tensor:
        return self.classifier(self.head_input(z))

    def linear_head(self) -> nn.Linear:
        return self.classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model(
    "feature_tail",
    needs=("embeddings",),  # its inputs are (N, D) stored embeddings, not images
    paper="NPOS (Tao et al. ICLR 2023), arXiv:2303.02966",
)
def feature_tail(
    num_classes: int,
    in_channels: int,
    class_embeddings: str = "",
    blocks: int = 1,
    hidden: int | None = None,
) -> FeatureTailClassifier:
    """The tail over ``in_channels``-dim embeddings, classifying by cosine to the class
    embeddings stored in ``class_embeddings`` (``(C, D_out)``, ``.npy`` / ``.pt``)."""
    if not class_embeddings:
        raise ConfigError("model.options.class_embeddings is required (a .npy or .pt path)")
    text = load_features(class_embeddings, "class embeddings")
    if len(text) != num_classes:
        raise ConfigError(
            f"model.options.class_embeddings has {len(text)} rows, the benchmark "
            f"{num_classes} classes; pass the class embeddings of the training labels"
        )
    if blocks < 0:
        raise ConfigError(f"model.options.blocks must be >= 0, got {blocks}")
    return FeatureTailClassifier(in_channels, text, blocks, hidden)
