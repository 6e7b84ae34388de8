"""Shared feature-space maths of the scores: one copy of each helper.

L2 normalisation, class means, the tied (shared) precision matrix, batched squared
Mahalanobis distances and the empirical class prior. Every helper takes its device from
its tensor inputs; the scikit-learn step runs on the CPU in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import EmpiricalCovariance
from torch import Tensor

from oodlab.errors import DataError


def l2_normalize(features: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows divided by their L2 norm (the epsilon guards the denominator only)."""
    return features / features.norm(dim=1, keepdim=True).clamp_min(eps)


def class_counts(labels: Tensor, num_classes: int) -> Tensor:
    """``(C,)`` number of samples per class; labels outside ``[0, C)`` or empty classes raise."""
    if labels.numel() == 0:
        raise DataError("no training samples: the labels are empty")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"training labels must lie in [0, {num_classes}), got values in [{low}, {high}]; "
            "fit on the labelled ID training outputs, not on an OOD set (label -1)"
        )
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise DataError(f"classes {missing} have no training samples; every class needs one")
    return counts


def class_means(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(C, D)`` mean feature of each class (ground-truth labels), in the features' dtype."""
    counts = class_counts(labels, num_classes)
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels.to(features.device), features)
    return sums / counts.to(device=features.device, dtype=features.dtype)[:, None]


def tied_precision(features: Tensor, labels: Tensor, means: Tensor) -> Tensor:
    """``(D, D)`` float64 inverse of the shared covariance of the class-centred features.

    The covariance is scikit-learn's ``EmpiricalCovariance`` (the maximum-likelihood 1/N
    estimate, OpenOOD's "MDS" choice); its ``precision_`` is a pseudo-inverse, so a singular
    covariance does not fail. Class-centred features have mean zero, hence
    ``assume_centered=True`` changes nothing but a rounding error.
    """
    centred = (features.double() - means.double()[labels.to(features.device)]).cpu().numpy()
    estimator = EmpiricalCovariance(assume_centered=True).fit(centred)
    precision = np.asarray(estimator.precision_, dtype=np.float64)
    return torch.from_numpy(precision).to(features.device)


def squared_mahalanobis(
    features: Tensor, means: Tensor, precision: Tensor, chunk: int = 4096
) -> Tensor:
    """``(N, C)`` float64 squared distances ``(h − μ_c)ᵀ P (h − μ_c)`` by the expanded form.

    ``hᵀPh − 2 hᵀPμ_c + μ_cᵀPμ_c`` costs one ``(N, D)×(D, D)`` and one ``(N, D)×(D, C)``
    product instead of ``C`` separate ``(N, D)×(D, D)`` ones (peers.md §3.1: 10–80× faster).
    It runs in float64, ``chunk`` rows at a time, on the device of ``features``; the
    cancellation error can make a distance slightly negative, so results are clamped at 0.
    """
    device = features.device
    precision = precision.to(device=device, dtype=torch.float64)
    means = means.to(device=device, dtype=torch.float64)
    p_means = means @ precision  # (C, D); P is symmetric, so this is (P μ_c)ᵀ
    mean_terms = (p_means * means).sum(1)  # (C,)
    out = []
    for block in features.double().split(chunk):
        quad = ((block @ precision) * block).sum(1, keepdim=True)
        out.append(quad - 2 * block @ p_means.T + mean_terms)
    if not out:
        return torch.zeros(0, len(means), dtype=torch.float64, device=device)
    return torch.cat(out).clamp_min(0)


def class_prior(labels: Tensor, num_classes: int) -> Tensor:
    """Empirical class prior ``π_c = n_c / Σ n`` from training labels (float64, CPU)."""
    counts = class_counts(labels.cpu(), num_classes).double()
    return counts / counts.sum()
