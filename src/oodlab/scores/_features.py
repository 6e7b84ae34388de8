"""Shared feature-space maths of the scores: one copy of each helper.

L2 normalisation, class means, the tied (shared) precision matrix, second moments, batched
squared Mahalanobis distances and the empirical class prior. Every helper takes its device
from its tensor inputs. The fits walk the training features in row chunks
(:func:`oodlab.scores._stream.row_chunks`) and accumulate in float64, so no float64 copy of
a whole bank is ever made and memory-mapped caches stay one chunk resident.
"""

from __future__ import annotations

import weakref

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


def raw_moments(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(s, Σ_i (h_i − s), Σ_i (h_i − s)(h_i − s)ᵀ)`` in float64, in one streaming pass.

    The shift ``s`` is the mean of the first chunk, so the sums stay well conditioned (the
    centred quantities below are differences of shifted sums, which the shift leaves
    unchanged). The result of the latest call is kept for the same tensor (a weak reference),
    so Mahalanobis, ``ada_maha`` and ViM fitted on the same training features share one
    ``(N, D)×(D, N)`` pass — the costliest step of a fit at ImageNet size.
    """
    memo = _MOMENTS.get(id(features))
    if memo is not None and memo[0]() is features:
        return memo[1]
    device = features.device
    dim = features.shape[1]
    shift = torch.zeros(dim, dtype=torch.float64, device=device)
    total = torch.zeros(dim, dtype=torch.float64, device=device)
    scatter = torch.zeros(dim, dim, dtype=torch.float64, device=device)
    for i, block in enumerate(row_chunks(features)):
        if i == 0:
            shift = block.double().mean(0)
        shifted = block.double() - shift
        total += shifted.sum(0)
        scatter.addmm_(shifted.T, shifted)
    key = id(features)
    _MOMENTS.clear()
    _MOMENTS[key] = (
        weakref.ref(features, lambda _r: _MOMENTS.pop(key, None)),
        (shift, total, scatter),
    )
    return shift, total, scatter


_MOMENTS: dict[int, tuple[weakref.ref[Tensor], tuple[Tensor, Tensor, Tensor]]] = {}


def tied_precision(features: Tensor, labels: Tensor, means: Tensor) -> Tensor:
    """``(D, D)`` float64 inverse of the shared covariance of the class-centred features.

    The covariance is the maximum-likelihood (1/N) estimate ``Σ_i (h_i − μ_{y_i})(h_i −
    μ_{y_i})ᵀ / N``, from the streaming :func:`raw_moments` as ``Σ_i h'_i h'_iᵀ − Σ_c n_c
    μ'_c μ'_cᵀ`` (primes: shifted by ``s``); its precision is the pseudo-inverse of the
    symmetric matrix (``scipy.linalg.pinvh``), exactly what scikit-learn's
    ``EmpiricalCovariance(assume_centered=True).precision_`` computes on the centred features
    (OpenOOD's "MDS" choice), so a singular covariance does not fail.
    """
    if len(features) == 0:
        raise DataError("no training samples: the features are empty")
    device = features.device
    shift, _, scatter = raw_moments(features)
    counts = torch.bincount(labels.cpu().long(), minlength=len(means)).to(device, torch.float64)
    centred_means = means.to(device=device, dtype=torch.float64) - shift
    within = scatter - (centred_means * counts[:, None]).T @ centred_means
    covariance = (within / len(features)).cpu().numpy()
    precision = linalg.pinvh(covariance, check_finite=False)
    return torch.from_numpy(np.asarray(precision, dtype=np.float64)).to(device)


def second_moment(features: Tensor, origin: Tensor) -> Tensor:
    """``(D, D)`` float64 ``Σ_i (h_i − u)(h_i − u)ᵀ / N``, the uncentred covariance about ``u``.

    From :func:`raw_moments`: with ``u' = u − s`` and ``t = Σ_i (h_i − s)``, it is
    ``(Σ h'h'ᵀ − u' tᵀ − t u'ᵀ + N u' u'ᵀ) / N``.
    """
    n = max(1, len(features))
    shift, total, scatter = raw_moments(features)
    u = origin.to(device=features.device, dtype=torch.float64) - shift
    return (scatter - torch.outer(u, total) - torch.outer(total, u) + n * torch.outer(u, u)) / n


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
