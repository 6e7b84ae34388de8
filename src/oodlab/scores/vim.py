"""ViM: a virtual logit from the feature residual outside the principal subspace."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores.base import Score, register_score, require_head
from oodlab.types import Outputs


def vim(logits: Tensor, residual_norm: Tensor, alpha: float) -> Tensor:
    """``α·‖(h − u)^{P⊥}‖ − LSE(f(x))``; higher = more OOD.

    Reference:
        Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with Virtual-logit Matching",
        CVPR 2022, arXiv:2203.10807, Eq. 5–8. The paper's OOD probability is the softmax mass
        of the virtual logit ``v = α·‖x^{P⊥}‖`` among ``[f(x), v]``, i.e. ``σ(v − LSE(f))``;
        oodlab returns its logit ``v − LSE(f)``, a monotone map of it (same metrics, no
        saturation at 1).
    """
    return (alpha * residual_norm.double() - torch.logsumexp(logits.double(), dim=1)).float()


def default_dim(feature_dim: int) -> int:
    """The paper's principal-subspace size: 1000 for D ≥ 2048, 512 for D ≥ 768, else D/2."""
    if feature_dim >= 2048:
        return 1000
    if feature_dim >= 768:
        return 512
    return feature_dim // 2


@register_score(
    "vim",
    needs=("features", "logits", "head_weight"),
    requires_fit=True,
    paper="Wang et al., CVPR 2022, arXiv:2203.10807",
)
class ViM(Score):
    """Virtual-logit matching.

    ``fit`` sets the origin ``u = −W⁺b``, the principal subspace of ``h − u`` (the top ``dim``
    eigenvectors of the uncentred covariance over the training features) and
    ``α = Σ max-logit / Σ residual norm`` over the training set.

    Args:
        dim: principal-subspace dimension; ``None`` uses :func:`default_dim`.
    """

    search_space = {"dim": (256, 1000)}

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"dim must be a positive integer or None, got {dim!r}")
        self.dim = dim

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> ViM:
        weight, bias = require_head(train, "vim")
        features = train.features.double()
        feature_dim = features.shape[1]
        dim = min(self.dim if self.dim is not None else default_dim(feature_dim), feature_dim - 1)
        if dim < 1:
            raise DataError(f"ViM needs features of dimension >= 2, got {feature_dim}")
        self.origin_ = -torch.linalg.pinv(weight.double()) @ bias.double()
        centred = (features - self.origin_).numpy()
        _, eigenvectors = np.linalg.eigh(centred.T @ centred / len(centred))
        # eigh sorts eigenvalues in ascending order: the residual space is the first D - dim.
        self.residual_basis_ = torch.from_numpy(
            np.ascontiguousarray(eigenvectors[:, : feature_dim - dim])
        )
        residual = self._residual_norm(train.features)
        self.alpha_ = float(train.logits.double().amax(1).sum() / residual.sum())
        return self

    def _residual_norm(self, features: Tensor) -> Tensor:
        return ((features.double() - self.origin_) @ self.residual_basis_).norm(dim=1)

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("origin_", "residual_basis_", "alpha_")
        return vim(outputs.logits, self._residual_norm(outputs.features), self.alpha_)
