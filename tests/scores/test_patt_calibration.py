"""PATT feature calibration: a literal per-sample loop for A_id and A_ood, a large
class-balanced resample, the identity a ≡ 1, and the [0, 2] range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores.patt_calibration import PATTEnergy, attention_weights, minmax_0_2

PRIOR = [0.4, 0.3, 0.2, 0.1]


def literal_attention(toy, prior) -> tuple[np.ndarray, np.ndarray]:
    """``A_id`` as the mean over classes of per-class means of ``h ⊙ w_y / π_y`` (a sample
    loop), and ``A_ood`` as the mean of ``h ⊙ w_ŷ / π_ŷ`` over the outliers."""
    w = toy.train.head_weight.double().numpy()
    h, y = toy.train.features.double().numpy(), toy.train.labels.numpy()
    per_class = []
    for c in range(4):
        terms = [h[i] * w[y[i]] / prior[y[i]] for i in range(len(y)) if y[i] == c]
        per_class.append(np.mean(terms, axis=0))
    a_id = np.mean(per_class, axis=0)
    h_aux = toy.aux.features.double().numpy()
    virtual = toy.aux.logits.numpy().argmax(1)
    a_ood = np.mean([h_aux[j] * w[virtual[j]] / prior[virtual[j]] for j in range(len(h_aux))], 0)
    return a_id, a_ood


def test_attention_against_a_literal_loop(toy):
    a_id, a_ood = literal_attention(toy, PRIOR)
    diff = a_id - a_ood
    expected = 2 * (diff - diff.min()) / (diff.max() - diff.min())
    prior = torch.tensor(PRIOR, dtype=torch.float64)
    result = attention_weights(toy.train, toy.aux, toy.train.head_weight, prior)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10, atol=1e-12)
    fitted = PATTEnergy(prior=PRIOR).fit(toy.train, aux=toy.aux)
    np.testing.assert_allclose(fitted.a_.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_exact_expectation_matches_a_large_class_balanced_resample(toy):
    # Drawn as the official ImageNet path does: a uniform class, then a uniform sample of it.
    a_id, _ = literal_attention(toy, PRIOR)
    g = np.random.default_rng(0)
    w = toy.train.head_weight.double().numpy()
    h, y = toy.train.features.double().numpy(), toy.train.labels.numpy()
    by_class = [np.flatnonzero(y == c) for c in range(4)]
    classes = g.integers(0, 4, 40_000)
    picks = np.array([g.choice(by_class[c]) for c in classes])
    sampled = (h[picks] * w[y[picks]] / np.asarray(PRIOR)[y[picks], None]).mean(0)
    np.testing.assert_allclose(sampled, a_id, atol=0.03 * np.abs(a_id).max())


def test_attention_lies_in_0_2_with_both_ends_reached(toy):
    a = PATTEnergy().fit(toy.train, aux=toy.aux).a_
    assert a.min().item() == pytest.approx(0.0)
    assert a.max().item() == pytest.approx(2.0)
    np.testing.assert_allclose(minmax_0_2(torch.tensor([1.0, 3.0, 2.0])).numpy(), [0, 2, 1])
    np.testing.assert_allclose(minmax_0_2(torch.full((3,), 5.0)).numpy(), [1, 1, 1])


def test_unit_attention_gives_back_the_plain_energy(toy):
    """§4.10 #6: with a ≡ 1 the calibrated model is the uncalibrated one."""
    score = PATTEnergy().fit(toy.train, aux=toy.aux)
    score.a_ = torch.ones(12, dtype=torch.float64)
    expected = -torch.logsumexp(toy.ood.logits.double(), dim=1)
    torch.testing.assert_close(score.score(toy.ood).double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        score.calibrated_logits(toy.ood), toy.ood.logits.double(), rtol=1e-6, atol=1e-6
    )


def test_score_is_the_energy_of_w_h_times_a_plus_b(toy):
    score = PATTEnergy(prior=PRIOR).fit(toy.train, aux=toy.aux)
    h, a = toy.ood.features.double().numpy(), score.a_.numpy()
    w, b = toy.ood.head_weight.double().numpy(), toy.ood.head_bias.double().numpy()
    logits = (h * a) @ w.T + b
    np.testing.assert_allclose(score.calibrated_logits(toy.ood).numpy(), logits, rtol=1e-10)
    top = logits.max(1)
    energy = -(top + np.log(np.exp(logits - top[:, None]).sum(1)))
    np.testing.assert_allclose(score.score(toy.ood).numpy(), energy, rtol=1e-5)


def test_prior_takes_effect_and_defaults_to_the_training_frequencies(toy):
    # The toy training set is balanced: the default prior is uniform, i.e. [1, 1, 1, 1].
    default = PATTEnergy().fit(toy.train, aux=toy.aux)
    uniform = PATTEnergy(prior=[1.0, 1.0, 1.0, 1.0]).fit(toy.train, aux=toy.aux)
    torch.testing.assert_close(default.a_, uniform.a_)
    skewed = PATTEnergy(prior=PRIOR).fit(toy.train, aux=toy.aux)
    assert not torch.equal(default.score(toy.ood), skewed.score(toy.ood))


@pytest.mark.parametrize("prior", [[1.0, 0.0, 1.0, 1.0], [-1.0, 2.0], [1.0], ["a", "b"]])
def test_invalid_prior_raises(prior):
    with pytest.raises(ConfigError):
        PATTEnergy(prior=prior)


def test_missing_aux_wrong_prior_length_and_not_fitted_raise(toy):
    with pytest.raises(DataError, match="aux"):
        PATTEnergy().fit(toy.train)
    with pytest.raises(DataError, match="prior has 3 classes"):
        PATTEnergy(prior=[0.5, 0.3, 0.2]).fit(toy.train, aux=toy.aux)
    with pytest.raises(NotFittedError):
        PATTEnergy().score(toy.id)
    with pytest.raises(NotFittedError):
        PATTEnergy().calibrated_logits(toy.id)
