"""MCM: maximum softmax of the cosine similarities to class (text) embeddings, negated."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import l2_normalize
from oodlab.scores.base import Score, register_score, require_positive
from oodlab.types import Outputs


def mcm(features: Tensor, class_embeddings: Tensor, temperature: float = 1.0) -> Tensor:
    """``−max_k softmax(cos(h, t_k) / τ)_k`` for features ``(N, D)``; higher = more OOD.

    Reference:
        Ming, Cai, Gu, Sun, Li & Li, "Delving into Out-of-Distribution Detection with
        Vision-Language Representations", NeurIPS 2022, arXiv:2211.13445, Eq. 4. The paper's
        score (higher = more ID) is negated.

    Notes:
        Per-sample cosine similarity, as MCM defines it; the NPOS code divides by the norm of
        the whole batch matrix instead (synthesis_and_mos.md §2.3), which makes the score
        depend on the batch.
    """
    if features.shape[1] != class_embeddings.shape[1]:
        raise DataError(
            f"features have dimension {features.shape[1]} but the class embeddings "
            f"{class_embeddings.shape[1]}; embed images and class prompts in the same space"
        )
    cosine = l2_normalize(features.double()) @ l2_normalize(class_embeddings.double()).T
    return -torch.softmax(cosine / temperature, dim=1).amax(dim=1).float()


@register_score(
    "mcm",
    needs=("features",),
    paper="Ming et al., NeurIPS 2022, arXiv:2211.13445",
)
class MCM(Score):
    """Maximum concept matching (:func:`mcm`).

    Args:
        class_embeddings: ``(C, D)`` class (prompt-ensemble text) embeddings; ``None`` uses the
            rows of the model's linear head as class embeddings (then MCM is the MSP of the
            cosine classifier).
        temperature: ``τ`` (NPOS test script and OpenOOD default 1; OpenOOD grid below).
    """

    search_space = {"temperature": (0.01, 1.0, 10.0)}

    def __init__(self, class_embeddings: Tensor | None = None, temperature: float = 1.0) -> None:
        require_positive("temperature", temperature)
        if class_embeddings is not None and (
            not isinstance(class_embeddings, Tensor) or class_embeddings.ndim != 2
        ):
            raise ConfigError("class_embeddings must be a (C, D) tensor or None")
        self.class_embeddings = class_embeddings
        self.temperature = temperature

    def score(self, outputs: Outputs) -> Tensor:
        embeddings = self.class_embeddings
        if embeddings is None:
            if outputs.head_weight is None:
                raise DataError("mcm needs class_embeddings=... or a model with a linear head")
            embeddings = outputs.head_weight
        return mcm(outputs.features, embeddings, self.temperature)
