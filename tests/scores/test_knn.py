"""KNN: faiss, the chunked torch path and ``torch.cdist`` + sort agree; the score is the
squared distance to the k-th nearest normalised training feature."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores.knn import KNN, knn_distances
from oodlab.types import Outputs


def brute_force(bank: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Squared distance to the k-th nearest bank row by cdist and a full sort (float64)."""
    return torch.cdist(queries.double(), bank.double()).sort(dim=1).values[:, k - 1] ** 2


@pytest.mark.parametrize("k", [1, 10, 300])
def test_faiss_torch_and_cdist_agree(k):
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(300, 16, generator=g)
    queries = torch.randn(40, 16, generator=g)
    expected = brute_force(bank, queries, k)
    for backend in ("faiss", "torch"):
        result = knn_distances(bank, queries, k, backend=backend)
        torch.testing.assert_close(result.double(), expected, atol=1e-4, rtol=1e-4)
    chunked = knn_distances(bank, queries, k, backend="torch", chunk=7)
    torch.testing.assert_close(chunked.double(), expected, atol=1e-4, rtol=1e-4)


def test_knn_distances_rejects_k_outside_the_bank():
    with pytest.raises(DataError, match="k=5"):
        knn_distances(torch.zeros(4, 2), torch.zeros(1, 2), 5)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_score_is_the_kth_distance_of_normalised_features(toy, backend):
    score = KNN(k=5, backend=backend).fit(toy.train)
    bank = F.normalize(toy.train.features.double(), dim=1)
    queries = F.normalize(toy.ood.features.double(), dim=1)
    expected = brute_force(bank, queries, 5)
    torch.testing.assert_close(score.score(toy.ood).double(), expected, atol=1e-5, rtol=1e-4)


def test_training_point_is_its_own_first_neighbour_and_scale_does_not_matter(toy):
    score = KNN(k=1).fit(toy.train)
    np.testing.assert_allclose(score.score(toy.train).numpy(), 0.0, atol=1e-5)
    scaled = Outputs(logits=toy.ood.logits, features=7.5 * toy.ood.features, labels=toy.ood.labels)
    torch.testing.assert_close(score.score(scaled), score.score(toy.ood), atol=1e-5, rtol=1e-5)


def test_bank_fraction_keeps_a_seeded_subset_of_the_training_features(toy):
    half = KNN(k=3, bank_fraction=0.5, seed=3).fit(toy.train)
    assert len(half.bank_) == len(toy.train) // 2
    full_bank = F.normalize(toy.train.features.float(), dim=1)
    # Every bank row is one of the normalised training features, and none twice.
    matches = torch.cdist(half.bank_, full_bank).argmin(1)
    assert torch.allclose(half.bank_, full_bank[matches], atol=1e-6)
    assert len(set(matches.tolist())) == len(matches)
    expected = brute_force(half.bank_, F.normalize(toy.ood.features.double(), dim=1), 3)
    torch.testing.assert_close(half.score(toy.ood).double(), expected, atol=1e-5, rtol=1e-4)
    again = KNN(k=3, bank_fraction=0.5, seed=3).fit(toy.train)
    torch.testing.assert_close(again.bank_, half.bank_)


def test_every_hyperparameter_takes_effect(toy):
    base = KNN(k=5, bank_fraction=0.5, seed=0).fit(toy.train).score(toy.ood)
    assert not torch.equal(base, KNN(k=20, bank_fraction=0.5, seed=0).fit(toy.train).score(toy.ood))
    assert not torch.equal(base, KNN(k=5, bank_fraction=1.0, seed=0).fit(toy.train).score(toy.ood))
    assert not torch.equal(base, KNN(k=5, bank_fraction=0.5, seed=1).fit(toy.train).score(toy.ood))
    # The backend changes how, not what: same values.
    other = KNN(k=5, bank_fraction=0.5, seed=0, backend="torch").fit(toy.train).score(toy.ood)
    torch.testing.assert_close(other, base, atol=1e-5, rtol=1e-4)


def test_k_above_the_bank_size_is_clipped_with_a_warning(toy):
    with pytest.warns(UserWarning, match="k=1000 exceeds the bank of 200"):
        clipped = KNN(k=1000).fit(toy.train)
    assert clipped.k_ == len(toy.train)
    torch.testing.assert_close(
        clipped.score(toy.ood), KNN(k=len(toy.train)).fit(toy.train).score(toy.ood)
    )


@pytest.mark.parametrize(
    "params",
    [
        {"k": 0},
        {"k": 2.5},
        {"k": True},
        {"bank_fraction": 0.0},
        {"bank_fraction": 1.5},
        {"backend": "annoy"},
        {"seed": -1},
    ],
)
def test_invalid_hyperparameters_raise(params):
    with pytest.raises(ConfigError):
        KNN(**params)


def test_not_fitted(toy):
    with pytest.raises(NotFittedError):
        KNN().score(toy.id)
