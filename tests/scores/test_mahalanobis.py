"""Mahalanobis (single layer) and the multi-layer ensemble with input noise, computed
independently: scikit-learn per sample, a hand-worked 1-D case, affine invariance, and the
ensemble's pre-processing step written out in numpy for a linear model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance
from torch import nn

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores.mahalanobis import Mahalanobis
from oodlab.scores.mahalanobis_ensemble import MahalanobisEnsemble
from oodlab.types import Outputs


def feature_outputs(features: torch.Tensor, labels: torch.Tensor, num_classes: int = 2) -> Outputs:
    logits = torch.zeros(len(features), num_classes)
    return Outputs(logits=logits, features=features, labels=labels)


def test_against_sklearn_per_sample_loop(toy):
    score = Mahalanobis().fit(toy.train)
    x, y = toy.train.features.double().numpy(), toy.train.labels.numpy()
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    estimator = EmpiricalCovariance().fit(x - means[y])
    queries = np.r_[toy.id.features.double().numpy(), toy.ood.features.double().numpy()]
    expected = [
        min(float(estimator.mahalanobis((h - mu)[None])[0]) for mu in means) for h in queries
    ]
    result = score.score(Outputs.concat([toy.id, toy.ood]))
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5)


def test_hand_worked_one_dimensional_case():
    # Class 0 at {-1, 1} (mean 0), class 1 at {9, 11} (mean 10): pooled MLE variance 1.
    train = feature_outputs(
        torch.tensor([[-1.0], [1.0], [9.0], [11.0]]), torch.tensor([0, 0, 1, 1])
    )
    score = Mahalanobis().fit(train)
    query = feature_outputs(torch.tensor([[3.0], [5.0], [10.0]]), torch.full((3,), -1))
    np.testing.assert_allclose(score.score(query).numpy(), [9.0, 25.0, 0.0], atol=1e-6)


def test_invariant_to_an_invertible_affine_map_of_the_features(toy):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64) + 3 * torch.eye(12)
    shift = torch.randn(12, generator=g, dtype=torch.float64)

    def mapped(out: Outputs) -> Outputs:
        return feature_outputs(out.features.double() @ a.T + shift, out.labels, 4)

    plain = Mahalanobis().fit(toy.train).score(toy.ood)
    moved = Mahalanobis().fit(mapped(toy.train)).score(mapped(toy.ood))
    np.testing.assert_allclose(moved.numpy(), plain.numpy(), rtol=1e-4)


def test_not_fitted_and_unlabelled_training_set_raise(toy):
    with pytest.raises(NotFittedError):
        Mahalanobis().score(toy.id)
    with pytest.raises(DataError, match="labels"):
        Mahalanobis().fit(toy.ood)  # OOD outputs carry label -1


# -- the multi-layer ensemble with input pre-processing ---------------------------------------


class LinearTwoLayer(nn.Module):
    """``f1 = A1 x``, ``f2 = A2 f1 + c2``; both layers are exposed by intermediate_features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin1 = nn.Linear(6, 4, bias=False)
        self.lin2 = nn.Linear(4, 3)
        self.classifier = nn.Linear(3, 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.lin1(x))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(z)

    def intermediate_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.lin1(x)
        return [f1, self.lin2(f1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture
def ensemble_data():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(40)
    x = torch.randn(120, 6, generator=g) + 2.5 * nn.functional.one_hot(labels, 6).float()
    queries = torch.randn(15, 6, generator=g) * 2
    return LinearTwoLayer().eval(), x, labels, queries


def reference_ensemble(model, x, labels, queries, epsilon, weights):
    """Lee et al.'s Alg. 1 written out for the linear model: the input gradient of
    ``(f − μ_ĉ)ᵀ P (f − μ_ĉ)`` for ``f = M x + c`` is ``2 Mᵀ P (f − μ_ĉ)``."""
    a1 = model.lin1.weight.detach().double().numpy()
    a2 = model.lin2.weight.detach().double().numpy()
    c2 = model.lin2.bias.detach().double().numpy()
    maps = [(a1, np.zeros(4)), (a2 @ a1, c2)]
    xs, ys, qs = x.double().numpy(), labels.numpy(), queries.double().numpy()
    standardised = []
    for m, c in maps:
        train_f = xs @ m.T + c
        means = np.stack([train_f[ys == k].mean(0) for k in range(3)])
        centred = train_f - means[ys]
        precision = np.linalg.inv(centred.T @ centred / len(centred))

        def dist(f, means=means, precision=precision):
            diff = f[:, None, :] - means[None]
            return np.einsum("ncd,de,nce->nc", diff, precision, diff)

        train_scores = dist(train_f).min(1)
        f = qs @ m.T + c
        closest = dist(f).argmin(1)
        grad = 2 * ((f - means[closest]) @ precision) @ m
        x_tilde = qs - epsilon * np.where(grad >= 0, 1.0, -1.0)
        layer = dist(x_tilde @ m.T + c).min(1)
        standardised.append((layer - train_scores.mean()) / train_scores.std(ddof=1))
    w = np.asarray(weights, dtype=float)
    return (w[:, None] * np.stack(standardised)).sum(0) / np.abs(w).sum()


@pytest.mark.parametrize(
    ("epsilon", "weights"), [(0.0, [1.0, 1.0]), (0.05, [1.0, 1.0]), (0.02, [0.3, -1.0])]
)
def test_ensemble_against_a_numpy_reference(ensemble_data, epsilon, weights):
    model, x, labels, queries = ensemble_data
    score = MahalanobisEnsemble(epsilon=epsilon, layer_weights=weights)
    score.fit_inputs(model, [(x[:50], labels[:50]), (x[50:], labels[50:])])
    expected = reference_ensemble(model, x, labels, queries, epsilon, weights)
    np.testing.assert_allclose(score.score_inputs(model, queries).numpy(), expected, rtol=1e-4)


def test_ensemble_noise_lowers_the_distance_of_id_inputs(ensemble_data):
    model, x, labels, _ = ensemble_data
    plain = MahalanobisEnsemble(epsilon=0.0).fit_inputs(model, [(x, labels)])
    noisy = MahalanobisEnsemble(epsilon=0.05).fit_inputs(model, [(x, labels)])
    assert (noisy.score_inputs(model, x) < plain.score_inputs(model, x)).all()


def test_ensemble_hyperparameters_take_effect(ensemble_data):
    model, x, labels, queries = ensemble_data

    def run(**params):
        score = MahalanobisEnsemble(**params).fit_inputs(model, [(x, labels)])
        return score.score_inputs(model, queries)

    base = run(epsilon=0.01, layer_weights=[1.0, 1.0])
    assert not torch.equal(base, run(epsilon=0.002, layer_weights=[1.0, 1.0]))
    assert not torch.equal(base, run(epsilon=0.01, layer_weights=[1.0, 0.2]))


def test_ensemble_invalid_hyperparameters_and_missing_layers_raise(ensemble_data):
    model, x, labels, queries = ensemble_data
    with pytest.raises(ConfigError):
        MahalanobisEnsemble(epsilon=-0.1)
    with pytest.raises(ConfigError):
        MahalanobisEnsemble(layer_weights=[])
    with pytest.raises(ConfigError):
        MahalanobisEnsemble(layer_weights=[1.0, 1.0, 1.0]).fit_inputs(model, [(x, labels)])
    with pytest.raises(NotFittedError):
        MahalanobisEnsemble().score_inputs(model, queries)
    plain = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(DataError, match="intermediate_features"):
        MahalanobisEnsemble().fit_inputs(plain, [(x, labels)])
