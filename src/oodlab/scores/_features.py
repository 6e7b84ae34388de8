"""Shared feature-space maths of the scores: one copy of each helper.

L2 normalisation, class means, the tied (shared) precision matrix, second moments, batched
squared Mahalanobis distances and the empirical class prior. Every helper takes its device
from its tensor inputs. The fits walk the training features in row chunks
(:func:`oodlab.scores._stream.row_chunks`) and accumulate in float64, so no float64 copy of
a whole bank is ever made and memory-mapped caches stay one chunk resident.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from oodlab.errors import DataError
from oodlab.scores._stream import row_chunks


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
    """``(C, D)`` float64 mean feature of each class (ground-truth labels), in chunks."""
    counts = class_counts(labels, num_classes)
    device = features.device
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64, device=device)
    start = 0
    for block in row_chunks(features):
        index = labels[start : start + len(block)].to(device)
        sums.index_add_(0, index, block.double())
        start += len(block)
    return sums / counts.to(device=device, dtype=torch.float64)[:, None]


def tied_precision(features: Tensor, labels: Tensor, means: Tensor) -> Tensor:
    """``(D, D)`` float64 inverse of the shared covariance of the class-centred features.

    The covariance is the maximum-likelihood (1/N) estimate ``Σ_i (h_i − μ_{y_i})(h_i −
    μ_{y_i})ᵀ / N``, accumulated chunk by chunk in float64; its precision is the
    pseudo-inverse of the symmetric matrix (``scipy.linalg.pinvh``), exactly what
    scikit-learn's ``EmpiricalCovariance(assume_centered=True).precision_`` computes (OpenOOD's
    "MDS" choice), so a singular covariance does not fail.
    """
    device = features.device
    means = means.to(device=device, dtype=torch.float64)
    scatter = torch.zeros(features.shape[1], features.shape[1], dtype=torch.float64, device=device)
    start = 0
    for block in row_chunks(features):
        centred = block.double() - means[labels[start : start + len(block)].to(device)]
        scatter.addmm_(centred.T, centred)
        start += len(block)
    if start == 0:
        raise DataError("no training samples: the features are empty")
    covariance = (scatter / start).cpu().numpy()
    precision = linalg.pinvh(covariance, check_finite=False)
    return torch.from_numpy(np.asarray(precision, dtype=np.float64)).to(device)


def second_moment(features: Tensor, origin: Tensor) -> Tensor:
    """``(D, D)`` float64 ``Σ_i (h_i − u)(h_i − u)ᵀ / N``, the uncentred covariance about ``u``."""
    device = features.device
    origin = origin.to(device=device, dtype=torch.float64)
    total = torch.zeros(features.shape[1], features.shape[1], dtype=torch.float64, device=device)
    for block in row_chunks(features):
        shifted = block.double() - origin
        total.addmm_(shifted.T, shifted)
    return total / max(1, len(features))


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
