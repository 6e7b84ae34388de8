"""ViM: a virtual logit from the feature residual outside the principal subspace."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import second_moment
from oodlab.scores._stream import row_chunks
from oodlab.scores.base import Score, head_features, register_score, require_head
from oodlab.types import Outputs


def vim(logits: Tensor, residual_norm: Tensor, alpha: float) -> Tensor:
    """``α·‖(h − u)^{P⊥}‖ − LSE(f(x))`` per sample; higher = more OOD.

    Args:
        logits: ``(N, C)`` class logits ``f(x)``.
        residual_norm: ``(N,)`` norm of the feature residual outside the principal subspace.
        alpha: the matching scale ``α``.

    Reference:
        Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with Virtual-logit Matching",
        CVPR 2022, arXiv:2203.10807, Sec. 3.3–3.4: the virtual logit ``ℓ₀ = α‖x^{P⊥}‖`` and
        the ViM score ``e^{ℓ₀} / (Σ_i e^{ℓ_i} + e^{ℓ₀})``, the softmax probability of the
        virtual (OOD) class. The official code (and OpenOOD) returns ``−ℓ₀ + LSE(f)``, higher
        = more ID; oodlab returns its negation ``ℓ₀ − LSE(f)``, which is exactly the logit of
        the paper's probability: ``score = log P₀ − log(1 − P₀)`` (a monotone map, so the
        metrics are those of the paper, without saturation at 1).
    """
    return (alpha * residual_norm.double() - torch.logsumexp(logits.double(), dim=1)).float()


def default_dim(feature_dim: int) -> int:
    """The paper's principal-subspace size: 1000 for D ≥ 2048, 512 for D ≥ 768, else D/2."""
    if feature_dim >= 2048:
        return 1000
    if feature_dim >= 768:
        return 512
    return feature_dim // 2


def vim_grid(feature_dim: int) -> tuple[int, ...]:
    """ViM's tuning grid for ``D`` features: OpenOOD's (256, 1000) when ``D > 1001``, else
    oodlab's ``D/8, D/4, D/2, 3D/4`` (distinct values in ``[1, D − 1]``)."""
    if feature_dim > 1001:
        return (256, 1000)
    values = {feature_dim // 8, feature_dim // 4, feature_dim // 2, 3 * feature_dim // 4}
    return tuple(sorted(v for v in values if 1 <= v <= feature_dim - 1))


@register_score(
    "vim",
    needs=("features", "logits", "head_weight"),
    requires_fit=True,
    paper="Wang, Li, Feng & Zhang, CVPR 2022, arXiv:2203.10807",
)
class ViM(Score):
    """ViM virtual-logit score :func:`vim`, fitted on the training outputs; higher = more OOD.

    ``fit`` sets the origin ``u = −W⁺b`` (the point the linear head maps to zero logits), the
    principal subspace ``P`` of ``h − u`` (the top ``dim`` eigenvectors of the uncentred
    covariance ``E[(h − u)(h − u)ᵀ]`` over the training features, as the official code's
    ``EmpiricalCovariance(assume_centered=True)``) and ``α = Σ_i max_c f_c(x_i) / Σ_i
    ‖(h_i − u)^{P⊥}‖`` over the training set. ``h`` is the linear head's input
    (:func:`~oodlab.scores.base.head_features`): ``u`` lives in that space, so for ASCOOD the
    subspace and the residual are those of the z-scored features, not of the raw ``h``.

    Args:
        dim: principal-subspace dimension; ``None`` uses :func:`default_dim`. A value of at
            least the feature dimension D is clipped to D − 1 (the residual needs at least
            one direction) with a warning.

    Tuning (:meth:`grid`): OpenOOD's grid ``{256, 1000}`` when both fit (D > 1001); else
    oodlab's ``{D/8, D/4, D/2, 3D/4}`` (OpenOOD's values would clip to D − 1 and leave
    nothing to choose, e.g. 1000 on a 512-d ResNet-18; D/2 is the paper's default there).

    Reference:
        Wang et al., CVPR 2022, arXiv:2203.10807, Sec. 3.
    """

    search_space = {"dim": (256, 1000)}

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ConfigError(f"dim must be a positive integer or None, got {dim!r}")
        self.dim = dim

    def grid(self, train: Outputs | None) -> dict[str, Sequence[Any]]:
        if train is None:
            return dict(self.search_space)
        return {"dim": vim_grid(head_features(train).shape[1])}

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> ViM:
        weight, bias = require_head(train, "vim")
        features = head_features(train)
        feature_dim = features.shape[1]
        if feature_dim < 2 or len(features) == 0:
            raise DataError(
                f"vim needs training features of dimension >= 2, got shape {tuple(features.shape)}"
            )
        dim = self.dim if self.dim is not None else default_dim(feature_dim)
        if dim > feature_dim - 1:
            warnings.warn(
                f"vim: dim={dim} leaves no residual space in {feature_dim}-d features; "
                f"using dim={feature_dim - 1}",
                stacklevel=2,
            )
            dim = feature_dim - 1
        self.dim_ = dim
        origin = -torch.linalg.pinv(weight.detach().double().cpu()) @ bias.detach().double().cpu()
        # One streaming pass for E[(h - u)(h - u)^T], a second for the residual norms.
        moment = second_moment(features, origin).cpu().numpy()
        _, eigenvectors = np.linalg.eigh(moment)
        # eigh sorts the eigenvalues in ascending order: the residual space is the first D - dim.
        self.origin_ = origin
        self.residual_basis_ = torch.from_numpy(
            np.ascontiguousarray(eigenvectors[:, : feature_dim - dim])
        )
        residual = sum(float(self._residual_norm(block).sum()) for block in row_chunks(features))
        top = sum(float(block.double().amax(1).sum()) for block in row_chunks(train.logits))
        self.alpha_ = top / residual
        return self

    def _residual_norm(self, features: Tensor) -> Tensor:
        origin = self.origin_.to(features.device)
        basis = self.residual_basis_.to(features.device)
        return ((features.double() - origin) @ basis).norm(dim=1)

    def residual_norm(self, outputs: Outputs) -> Tensor:
        """``‖(I − PPᵀ)(h − u)‖`` ``(N,)``, the norm of the feature residual (float64)."""
        self._check_fitted("origin_", "residual_basis_")
        return self._residual_norm(head_features(outputs))

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("origin_", "residual_basis_", "alpha_")
        return vim(outputs.logits, self._residual_norm(head_features(outputs)), self.alpha_)
