"""PATT feature calibration: ``balance="prior"`` against a sample loop, ``"official"``
against a transcription of the released code, the identity a ≡ 1, and the [0, 2] range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores.patt_calibration import (
    PATTEnergy,
    PATTEnergyOfficial,
    attention_weights,
    minmax_0_2,
    official_accumulation,
)
from oodlab.types import Outputs

PRIOR = [0.4, 0.3, 0.2, 0.1]


def subset(outputs, index):
    return outputs.subset(torch.as_tensor(index))


def long_tailed(toy):
    """The toy training outputs cut to 50 / 30 / 15 / 5 samples per class."""
    y = toy.train.labels.numpy()
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in enumerate((50, 30, 15, 5))])
    return subset(toy.train, keep)


def plain_mean_attention(train, aux, prior) -> np.ndarray:
    """``balance="prior"`` by a sample loop: the training-set mean of ``h ⊙ w_y / π_y`` minus
    the outliers' mean of ``h ⊙ w_ŷ / π_ŷ``, min-max to [0, 2]."""
    w = train.head_weight.double().numpy()
    h, y = train.features.double().numpy(), train.labels.numpy()
    a_id = np.mean([h[i] * w[y[i]] / prior[y[i]] for i in range(len(y))], axis=0)
    h_aux, virtual = aux.features.double().numpy(), aux.logits.numpy().argmax(1)
    a_ood = np.mean([h_aux[j] * w[virtual[j]] / prior[virtual[j]] for j in range(len(h_aux))], 0)
    diff = a_id - a_ood
    return 2 * (diff - diff.min()) / (diff.max() - diff.min())


def official_transcription(train, aux, prior, batch_size, seed) -> np.ndarray:
    """A re-typed transcription of the released code (``test.py`` calibration loop and
    ``Classbalanced_Calibration``): a WeightedRandomSampler over 1/n_c class weights, a
    DataLoader with drop_last zipped with the in-order outlier loader, the per-sample loop,
    ``finalScore = finalScore * batch_idx + Score − ood_Score``, then sklearn's MinMaxScaler."""
    from sklearn.preprocessing import MinMaxScaler
    from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

    y = train.labels.numpy()
    cls_num = np.bincount(y, minlength=4)
    cls_weight = 1.0 / cls_num
    cls_weight = cls_weight / np.sum(cls_weight)
    samples_weight = torch.from_numpy(np.array([cls_weight[t] for t in y])).double()
    sampler = WeightedRandomSampler(
        samples_weight, len(y), replacement=True, generator=torch.Generator().manual_seed(seed)
    )
    balance = DataLoader(
        TensorDataset(train.features.double(), train.labels),
        batch_size=batch_size, sampler=sampler, drop_last=True,
    )  # fmt: skip
    ood = DataLoader(TensorDataset(aux.features.double(), aux.logits), batch_size=batch_size)
    w = train.head_weight.double()
    p = torch.tensor(prior, dtype=torch.float64) ** -1
    final = torch.zeros(w.shape[1], dtype=torch.float64)
    for batch_idx, ((f_in, labels), (f_ood, ood_logits)) in enumerate(zip(balance, ood)):
        virtual = ood_logits.max(1)[1]
        score = torch.zeros_like(final)
        for feature, label in zip(f_in, labels):
            score = torch.mul(feature, w[label]) * p[label] + score
        final = final * batch_idx + score / len(labels)
        ood_score = torch.zeros_like(final)
        for feature, label in zip(f_ood, virtual):
            ood_score = torch.mul(feature, w[label]) * p[label] + ood_score
        final = final - ood_score / len(virtual)
    scaler = MinMaxScaler(feature_range=(0, 2))
    return scaler.fit_transform(final.numpy().reshape(-1, 1)).ravel()


def test_prior_balance_is_the_plain_training_set_mean(toy):
    train = long_tailed(toy)
    expected = plain_mean_attention(train, toy.aux, PRIOR)
    prior = torch.tensor(PRIOR, dtype=torch.float64)
    result = attention_weights(train, toy.aux, train.head_weight, prior, "prior")
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10, atol=1e-12)
    fitted = PATTEnergy(prior=PRIOR).fit(train, aux=toy.aux)
    assert fitted.balance == "prior"
    np.testing.assert_allclose(fitted.a_.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("batch_size", "seed"), [(32, 3407), (48, 1), (1000, 0)])
def test_official_balance_equals_a_transcription_of_the_released_code(toy, batch_size, seed):
    # 100 training samples: batch 32 gives 3 drawn batches zipped with 3 outlier batches (the
    # last of 16), so A·b runs with b = 0, 1, 2; batch 1000 exceeds N (one batch of N draws
    # in oodlab, none in the code): the transcription then uses N as its batch size.
    train = long_tailed(toy)
    expected = official_transcription(train, toy.aux, PRIOR, min(batch_size, 100), seed)
    fitted = PATTEnergyOfficial(prior=PRIOR, batch_size=batch_size, seed=seed)
    fitted.fit(train, aux=toy.aux)
    assert fitted.balance == "official"
    np.testing.assert_allclose(fitted.a_.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_official_weights_the_tail_twice_and_prior_once(toy):
    """The official draw's expectation of ``h ⊙ w_y / π_y`` is the mean over classes of the
    class means (each class 1/C of the draws), i.e. class c weighted by ``1/π_c``; the
    plain mean weights class ``c`` by ``n_c / (N π_c) = 1``. Checked with one huge batch."""
    train = long_tailed(toy)
    prior = torch.tensor(PRIOR, dtype=torch.float64)
    w, h, y = train.head_weight.double(), train.features.double(), train.labels
    terms = h * w[y] / prior[y, None]
    balanced = torch.stack([terms[y == c].mean(0) for c in range(4)]).mean(0)
    many = torch.cat([train.features] * 400)  # 40,000 draws in one batch
    big = type(train)(
        logits=torch.cat([train.logits] * 400), features=many, labels=torch.cat([y] * 400),
        head_weight=train.head_weight, head_bias=train.head_bias,
    )  # fmt: skip
    no_aux = subset(toy.aux, [0])
    no_aux = type(no_aux)(
        logits=no_aux.logits, features=torch.zeros_like(no_aux.features),
        labels=no_aux.labels, head_weight=no_aux.head_weight, head_bias=no_aux.head_bias,
    )  # fmt: skip
    got = official_accumulation(big, no_aux, train.head_weight, prior, 40_000, 0)
    balanced = balanced / balanced.abs().max()  # the accumulation is known up to a scale
    np.testing.assert_allclose((got / got.abs().max()).numpy(), balanced.numpy(), atol=0.03)
    plain = terms.mean(0)
    assert (plain / plain.abs().max() - balanced).abs().max() > 0.2


@pytest.mark.parametrize("balance", ["prior", "official"])
def test_both_balances_are_the_identity_when_a_is_one(toy, balance):
    """§4.10 #6: features with ``h ⊙ w_y / π_y`` the same constant in every dimension and
    zero outliers give ``A`` constant across dimensions, ``a ≡ 1``, and the calibrated
    logits are the model's own."""
    prior = torch.tensor(PRIOR, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    weight = torch.ones(4, 12, dtype=torch.float64)
    train = Outputs(
        logits=torch.zeros(8, 4), features=(3.0 * prior[y, None]).expand(8, 12).float(),
        labels=y, head_weight=weight, head_bias=torch.zeros(4),
    )  # fmt: skip
    aux = Outputs(logits=torch.randn(5, 4), features=torch.zeros(5, 12), labels=-torch.ones(5))
    score = PATTEnergy(prior=PRIOR, balance=balance, batch_size=4).fit(train, aux=aux)
    torch.testing.assert_close(score.a_, torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(
        score.calibrated_logits(toy.ood), toy.ood.logits.double(), rtol=1e-6, atol=1e-6
    )


def test_official_accumulation_does_not_overflow_with_many_batches(toy):
    # 200 batches of 1: A·b grows like 199!, far beyond float64, yet a stays finite in [0, 2].
    train = long_tailed(toy)
    score = PATTEnergyOfficial(prior=PRIOR, batch_size=1).fit(train, aux=toy.aux)
    assert torch.isfinite(score.a_).all()
    assert score.a_.min() == 0
    assert score.a_.max() == 2


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


@pytest.mark.parametrize(
    "kwargs", [{"balance": "double"}, {"batch_size": 0}, {"batch_size": 2.5}, {"seed": -1}]
)
def test_invalid_balance_options_raise(kwargs):
    with pytest.raises(ConfigError):
        PATTEnergy(**kwargs)


def test_missing_aux_wrong_prior_length_and_not_fitted_raise(toy):
    with pytest.raises(DataError, match="aux"):
        PATTEnergy().fit(toy.train)
    with pytest.raises(DataError, match="prior has 3 classes"):
        PATTEnergy(prior=[0.5, 0.3, 0.2]).fit(toy.train, aux=toy.aux)
    with pytest.raises(NotFittedError):
        PATTEnergy().score(toy.id)
    with pytest.raises(NotFittedError):
        PATTEnergy().calibrated_logits(toy.id)
