"""Mahalanobis score: squared distance to the closest class mean under a tied covariance."""

from __future__ import annotations

from torch import Tensor

from oodlab.scores._features import class_means, squared_mahalanobis, tied_precision
from oodlab.scores.base import Score, register_score
from oodlab.types import Outputs


def mahalanobis(features: Tensor, means: Tensor, precision: Tensor) -> Tensor:
    """``min_c (h − μ_c)ᵀ Σ⁻¹ (h − μ_c)`` for features ``(N, D)``; higher = more OOD.

    Reference:
        Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
        Samples and Adversarial Attacks", NeurIPS 2018, arXiv:1807.03888, Eq. 2. The paper's
        confidence is ``max_c −(h − μ_c)ᵀ Σ⁻¹ (h − μ_c)`` (higher = more ID); oodlab returns
        its negation, the squared distance to the closest class mean.
    """
    return squared_mahalanobis(features, means, precision).amin(dim=1).float()


@register_score(
    "mahalanobis",
    needs=("features", "labels"),
    requires_fit=True,
    paper="Lee et al., NeurIPS 2018, arXiv:1807.03888",
)
class Mahalanobis(Score):
    """Single-layer Mahalanobis score on the penultimate features (OpenOOD's "MDS").

    ``fit`` takes the class means of the training features with ground-truth labels and the
    tied covariance of the class-centred features, estimated by maximum likelihood
    (scikit-learn ``EmpiricalCovariance``; a pseudo-inverse gives the precision).

    Notes:
        No input pre-processing here: this is the cached-feature variant. The ImOOD code's
        Mahalanobis path fills its class pools with the outlier slice of the batch and inverts
        the sign (long_tailed.md §2.9); oodlab follows the paper.
    """

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> Mahalanobis:
        features = train.features.double()
        self.class_means_ = class_means(features, train.labels, train.num_classes)
        self.precision_ = tied_precision(features, train.labels, self.class_means_)
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("class_means_", "precision_")
        return mahalanobis(outputs.features, self.class_means_, self.precision_)
