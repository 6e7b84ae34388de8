"""The shared feature maths of ``oodlab.scores._features`` against numpy loops and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance

from oodlab.errors import DataError
from oodlab.scores._features import (
    class_means,
    class_prior,
    l2_normalize,
    squared_mahalanobis,
    tied_precision,
)


def data(n: int = 90, d: int = 5, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % c
    features = torch.randn(n, d, generator=g, dtype=torch.float64) + 3 * labels[:, None]
    return features, labels


def test_l2_normalize_rows_have_unit_norm_and_keep_direction():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x).numpy(), [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])


def test_class_means_against_a_numpy_loop():
    features, labels = data()
    expected = np.stack([features.numpy()[labels.numpy() == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(class_means(features, labels, 3).numpy(), expected, rtol=1e-12)


def test_tied_precision_is_the_inverse_of_the_mle_covariance_of_centred_features():
    features, labels = data()
    x, y = features.numpy(), labels.numpy()
    centred = x - np.stack([x[y == c].mean(0) for c in range(3)])[y]
    covariance = centred.T @ centred / len(x)  # MLE: 1/N, not 1/(N - 1)
    precision = tied_precision(features, labels, class_means(features, labels, 3)).numpy()
    np.testing.assert_allclose(precision, np.linalg.inv(covariance), rtol=1e-8)
    np.testing.assert_allclose(
        precision, EmpiricalCovariance().fit(centred).precision_, rtol=1e-8, atol=1e-12
    )


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_squared_mahalanobis_expanded_form_against_a_pairwise_loop(chunk):
    features, labels = data()
    means = class_means(features, labels, 3)
    precision = tied_precision(features, labels, means)
    queries = torch.randn(11, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p, m, q = precision.numpy(), means.numpy(), queries.numpy()
    expected = np.array([[(h - mu) @ p @ (h - mu) for mu in m] for h in q])
    result = squared_mahalanobis(queries, means, precision, chunk=chunk)
    assert result.dtype == torch.float64
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-9)


def test_squared_mahalanobis_accepts_float32_features_and_stays_accurate():
    features, labels = data()
    means = class_means(features, labels, 3)
    precision = tied_precision(features, labels, means)
    exact = squared_mahalanobis(features, means, precision)
    single = squared_mahalanobis(features.float(), means, precision)
    np.testing.assert_allclose(single.numpy(), exact.numpy(), rtol=1e-5, atol=1e-5)


def test_class_prior_is_the_label_frequency():
    prior = class_prior(torch.tensor([0, 0, 0, 1, 2, 2]), 3)
    np.testing.assert_allclose(prior.numpy(), [0.5, 1 / 6, 1 / 3])


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0, 1, 1, 0]), "no training samples"),  # class 2 missing
        (torch.tensor([0, 1, 2, -1]), "lie in"),  # an OOD label
        (torch.tensor([0, 1, 2, 3]), "lie in"),  # a label beyond C
    ],
)
def test_bad_labels_raise_one_clear_error(labels, match):
    with pytest.raises(DataError, match=match):
        class_means(torch.zeros(4, 2), labels, 3)
    with pytest.raises(DataError, match=match):
        class_prior(labels, 3)
