"""Feature-space scores against scikit-learn, brute force, autograd and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance

from oodlab.scores.ash import ASH, shape_activations
from oodlab.scores.gradnorm import gradnorm
from oodlab.scores.knn import KNN, knn_distances
from oodlab.scores.mahalanobis import Mahalanobis
from oodlab.scores.react import ReAct
from oodlab.scores.vim import ViM


def test_mahalanobis_against_sklearn(toy):
    score = Mahalanobis().fit(toy.train)
    feats, labels = toy.train.features.numpy().astype(float), toy.train.labels.numpy()
    means = np.stack([feats[labels == c].mean(0) for c in range(4)])
    cov = EmpiricalCovariance().fit(feats - means[labels])
    queries = toy.ood.features.numpy().astype(float)
    distances = np.stack([cov.mahalanobis(queries - m) for m in means], axis=1)
    np.testing.assert_allclose(score.score(toy.ood).numpy(), distances.min(1), rtol=1e-4)


def test_knn_faiss_torch_and_cdist_agree():
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(40, 16, generator=g), dim=1)
    expected = torch.cdist(queries.double(), bank.double()).sort(1).values[:, 9] ** 2
    for backend in ("faiss", "torch"):
        result = knn_distances(bank, queries, 10, backend=backend)
        torch.testing.assert_close(result.double(), expected, atol=1e-5, rtol=1e-4)


def test_knn_score_uses_normalised_features(toy):
    score = KNN(k=5).fit(toy.train)
    bank = torch.nn.functional.normalize(toy.train.features.double(), dim=1)
    query = torch.nn.functional.normalize(toy.id.features.double(), dim=1)
    expected = torch.cdist(query, bank).sort(1).values[:, 4] ** 2
    torch.testing.assert_close(score.score(toy.id).double(), expected, atol=1e-5, rtol=1e-4)
    half = KNN(k=5, bank_fraction=0.5, seed=3).fit(toy.train)
    assert len(half.bank_) == len(toy.train) // 2


def test_gradnorm_closed_form_matches_autograd():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4)
    features = torch.randn(5, 6)
    expected = []
    for h in features:
        layer.zero_grad()
        logits = layer(h[None])
        loss = -torch.log_softmax(logits, dim=1).sum()  # CE against an all-ones target
        loss.backward()
        expected.append(-layer.weight.grad.abs().sum().item())
    result = gradnorm(features, layer.weight.detach(), layer.bias.detach())
    assert result.tolist() == pytest.approx(expected, rel=1e-5)


def test_react_against_numpy(toy):
    score = ReAct(percentile=80).fit(toy.train)
    threshold = np.percentile(toy.train.features.numpy().astype(float).ravel(), 80)
    assert score.threshold_ == pytest.approx(threshold)
    clipped = np.minimum(toy.ood.features.numpy(), threshold)
    logits = clipped @ toy.ood.head_weight.numpy().T + toy.ood.head_bias.numpy()
    expected = -np.log(np.exp(logits).sum(1))
    np.testing.assert_allclose(score.score(toy.ood).numpy(), expected, rtol=1e-5)


def test_vim_residual_and_virtual_logit_identity(toy):
    score = ViM(dim=4).fit(toy.train)
    weight, bias = toy.train.head_weight.double().numpy(), toy.train.head_bias.double().numpy()
    origin = -np.linalg.pinv(weight) @ bias
    centred = toy.train.features.double().numpy() - origin
    # Principal subspace by SVD of the centred training features (an independent route).
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    principal = vt[:4].T
    x = toy.ood.features.double().numpy() - origin
    residual = np.linalg.norm(x - x @ principal @ principal.T, axis=1)
    train_residual = np.linalg.norm(centred - centred @ principal @ principal.T, axis=1)
    alpha = toy.train.logits.double().numpy().max(1).sum() / train_residual.sum()
    assert score.alpha_ == pytest.approx(alpha, rel=1e-6)
    logits = toy.ood.logits.double().numpy()
    virtual = alpha * residual
    # The paper's OOD probability: softmax mass of the virtual logit among [logits, virtual].
    prob = np.exp(virtual) / (np.exp(virtual) + np.exp(logits).sum(1))
    result = score.score(toy.ood).double().numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-result)), prob, rtol=1e-4)


def test_ash_against_numpy():
    feats = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    # Keep the top 40% = 2 entries (4 and 3): s1 = 10, s2 = 7.
    np.testing.assert_allclose(shape_activations(feats, 60, "p").numpy(), [[4, 0, 3, 0, 0]])
    np.testing.assert_allclose(shape_activations(feats, 60, "b").numpy(), [[5, 0, 5, 0, 0]])
    scale = np.exp(10 / 7)
    np.testing.assert_allclose(
        shape_activations(feats, 60, "s").numpy(), [[4 * scale, 0, 3 * scale, 0, 0]], rtol=1e-6
    )
    weight = torch.eye(5)[:3]
    from oodlab.types import Outputs

    out = Outputs(
        logits=feats[:, :3],
        features=feats,
        labels=torch.tensor([0]),
        head_weight=weight,
        head_bias=torch.zeros(3),
    )
    logits = np.array([4.0, 0.0, 3.0])
    expected = -np.log(np.exp(logits).sum())
    assert ASH(60, "p").score(out).item() == pytest.approx(expected, rel=1e-6)


def test_mahalanobis_ensemble_without_noise_is_the_standardised_single_layer_score(toy):
    from oodlab.scores.mahalanobis_ensemble import MahalanobisEnsemble

    ensemble = MahalanobisEnsemble(epsilon=0.0, layer_weights=[0.0, 1.0])
    ensemble.fit_inputs(toy.model, [(toy.x_train, toy.y_train)])
    single = Mahalanobis().fit(toy.train)
    train_scores = single.score(toy.train).double()
    expected = (single.score(toy.ood).double() - train_scores.mean()) / train_scores.std()
    torch.testing.assert_close(
        ensemble.score_inputs(toy.model, toy.x_ood).double(), expected, rtol=1e-4, atol=1e-4
    )


def test_mahalanobis_ensemble_noise_moves_inputs_towards_their_class(toy):
    from oodlab.scores.mahalanobis_ensemble import MahalanobisEnsemble

    plain = MahalanobisEnsemble(epsilon=0.0).fit_inputs(toy.model, [(toy.x_train, toy.y_train)])
    noisy = MahalanobisEnsemble(epsilon=0.05).fit_inputs(toy.model, [(toy.x_train, toy.y_train)])
    # Pre-processing lowers the distance to the closest class, hence the combined score.
    assert (noisy.score_inputs(toy.model, toy.x_id) < plain.score_inputs(toy.model, toy.x_id)).all()
