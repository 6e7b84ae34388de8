"""MCM: maximum softmax of the cosine similarities to class (text) embeddings, negated."""

from __future__ import annotations

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import l2_normalize
from oodlab.scores.base import Score, head_features, register_score, require_positive
from oodlab.types import Outputs


def mcm(features: Tensor, class_embeddings: Tensor, temperature: float = 1.0) -> Tensor:
    """``−max_k softmax(s/τ)_k`` with ``s_k = cos(h, t_k)``, features ``(N, D)``; higher = OOD.

    Reference:
        Ming, Cai, Gu, Sun, Li & Li, "Delving into Out-of-Distribution Detection with
        Vision-Language Representations", NeurIPS 2022, arXiv:2211.13445, Sec. 3, the
        Maximum Concept Matching score ``S_MCM = max_k e^{s_k/τ} / Σ_j e^{s_j/τ}``
        (synthesis_and_mos.md §4.8). The paper's score is higher = more ID; oodlab returns
        its negation.

    Args:
        features: ``(N, D)`` image features ``h`` (any scale: each row is L2-normalised).
        class_embeddings: ``(K, D)`` class embeddings ``t_k`` (any scale: each row is
            L2-normalised).
        temperature: ``τ``.

    Notes:
        The cosine is per sample, as MCM defines it. NPOS's test code divides the image
        features by the Frobenius norm of the whole batch instead (synthesis_and_mos.md
        §2.3), which makes a sample's score depend on the rest of its batch. A zero feature
        row has cosine 0 with every class, so it gets the least confident score ``−1/K``.
    """
    if features.ndim != 2 or class_embeddings.ndim != 2:
        raise DataError(
            f"mcm needs (N, D) features and (K, D) class embeddings, got shapes "
            f"{tuple(features.shape)} and {tuple(class_embeddings.shape)}"
        )
    if features.shape[1] != class_embeddings.shape[1]:
        raise DataError(
            f"features have dimension {features.shape[1]} but the class embeddings "
            f"{class_embeddings.shape[1]}; embed images and class prompts in the same space"
        )
    embeddings = class_embeddings.to(device=features.device, dtype=torch.float64)
    cosine = l2_normalize(features.double()) @ l2_normalize(embeddings).T
    return -torch.softmax(cosine / temperature, dim=1).amax(dim=1).float()


@register_score(
    "mcm",
    needs=("features",),
    paper="Ming et al., NeurIPS 2022, arXiv:2211.13445",
)
class MCM(Score):
    """Maximum Concept Matching (:func:`mcm`) on the cached penultimate features.

    Args:
        class_embeddings: ``(C, D)`` class embeddings in the feature space (for CLIP, the
            prompt-ensembled text embeddings of the class names). ``None`` uses the rows
            of the model's linear head ``W`` (``outputs.head_weight``) as class embeddings,
            so MCM becomes the MSP of the cosine classifier ``cos(h, w_c)/τ`` (the bias is
            ignored; ``h`` is then the linear head's input, ASCOOD's z-scored features, see
            :func:`~oodlab.scores.base.head_features`); a model without a linear head then
            raises ``DataError``.
        temperature: ``τ > 0``; default 1 (NPOS test script and OpenOOD), OpenOOD's
            sweep ``{0.01, 1, 10}`` as ``search_space``.
    """

    search_space = {"temperature": (0.01, 1.0, 10.0)}

    def __init__(self, class_embeddings: Tensor | None = None, temperature: float = 1.0) -> None:
        require_positive("temperature", temperature)
        if class_embeddings is not None:
            if not isinstance(class_embeddings, Tensor) or class_embeddings.ndim != 2:
                shape = getattr(class_embeddings, "shape", None)
                raise ConfigError(
                    f"class_embeddings must be a (C, D) tensor or None, got "
                    f"{type(class_embeddings).__name__} of shape {shape}"
                )
            if not class_embeddings.dtype.is_floating_point or class_embeddings.shape[0] == 0:
                raise ConfigError("class_embeddings must be a non-empty floating-point tensor")
            if not bool(torch.isfinite(class_embeddings).all()):
                raise ConfigError("class_embeddings contain NaN or infinite values")
            if bool((class_embeddings.norm(dim=1) == 0).any()):
                raise ConfigError("class_embeddings have an all-zero row; its cosine is undefined")
        self.class_embeddings = class_embeddings
        self.temperature = temperature

    def score(self, outputs: Outputs) -> Tensor:
        embeddings = self.class_embeddings
        if embeddings is None:
            if outputs.head_weight is None:
                raise DataError(
                    "score 'mcm' needs class_embeddings=... or a model with a linear head "
                    "(whose weight rows serve as class embeddings)"
                )
            return mcm(head_features(outputs), outputs.head_weight, self.temperature)
        return mcm(outputs.features, embeddings, self.temperature)
