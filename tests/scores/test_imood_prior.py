"""ImOOD ``ada_*`` scores: the closed form of ``ada_energy``, the uniform-prior identity, a
hand-worked ``ada_msp``, and every score against a literal numpy evaluation of §2.6 (b)
with baselines computed independently (scipy, scikit-learn, autograd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp, softmax
from sklearn.covariance import EmpiricalCovariance

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores import SCORES
from oodlab.scores.imood_prior import AdaEnergy, AdaMSP, prior_correction
from oodlab.types import Outputs

ADA = ("ada_msp", "ada_energy", "ada_bin_disc", "ada_maha", "ada_gradnorm")
PRIOR = [0.4, 0.3, 0.2, 0.1]


def logit_outputs(logits: torch.Tensor) -> Outputs:
    return Outputs(
        logits=logits,
        features=torch.zeros(len(logits), 1),
        labels=torch.zeros(len(logits), dtype=torch.long),
    )


def baseline_id_ness(name: str, toy, out: Outputs) -> np.ndarray:
    """The baseline ``s(x)`` (higher = more ID) of each ada score, computed independently."""
    logits = out.logits.double().numpy()
    if name == "ada_msp":
        return softmax(logits, axis=1).max(1) - 1 / logits.shape[1]
    if name == "ada_energy":
        return logsumexp(logits, axis=1)
    if name == "ada_bin_disc":
        return out.extras["bin_logit"].double().numpy()
    if name == "ada_maha":
        x, y = toy.train.features.double().numpy(), toy.train.labels.numpy()
        means = np.stack([x[y == c].mean(0) for c in range(4)])
        cov = EmpiricalCovariance().fit(x - means[y])
        h = out.features.double().numpy()
        return -np.stack([cov.mahalanobis(h - m) for m in means], axis=1).min(1)
    # ada_gradnorm: |∂ KL(u ‖ softmax(Wh + b)) / ∂W|₁ per sample, by autograd (the ImOOD code).
    layer = torch.nn.Linear(out.features.shape[1], out.num_classes).double()
    with torch.no_grad():
        layer.weight.copy_(out.head_weight)
        layer.bias.copy_(out.head_bias)
    norms = []
    for h in out.features.double():
        layer.zero_grad()
        log_p = F.log_softmax(layer(h[None]), dim=1)
        uniform = torch.full_like(log_p, 1 / out.num_classes)
        F.kl_div(log_p, uniform, reduction="sum").backward()
        norms.append(layer.weight.grad.abs().sum().item())
    return np.array(norms)


@pytest.mark.parametrize("name", ADA)
@pytest.mark.parametrize("tau_la", [1.0, 0.5])
def test_every_ada_score_against_the_literal_formula(name, tau_la, toy):
    kappa = 0.7
    score = SCORES.create(name, kappa=kappa, tau_la=tau_la, prior=PRIOR).fit(toy.train)
    out = Outputs.concat([toy.id, toy.ood])
    s = baseline_id_ness(name, toy, out)
    pi = np.asarray(PRIOR) ** tau_la
    pi_tilde = pi / pi.sum()
    p = softmax(out.logits.double().numpy(), axis=1)
    expected = -(s + kappa * np.log((p / pi_tilde).mean(1)))
    np.testing.assert_allclose(score.score(out).numpy(), expected, rtol=2e-5, atol=2e-5)


def test_ada_energy_closed_form():
    """§4.10 #1: with κ = τ = 1, S = −(LSE(f − log π) − log C)."""
    logits = torch.randn(9, 4, generator=torch.Generator().manual_seed(0)) * 3
    score = AdaEnergy(prior=PRIOR).fit(logit_outputs(logits))
    expected = -(logsumexp(logits.double().numpy() - np.log(PRIOR), axis=1) - math.log(4))
    np.testing.assert_allclose(score.score(logit_outputs(logits)).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ADA)
def test_uniform_prior_or_zero_tau_gives_back_the_baseline(name, toy):
    """§4.10 #3: with π̃ uniform the correction is log Σ p = 0, so S = −s."""
    out = Outputs.concat([toy.id, toy.ood])
    expected = -baseline_id_ness(name, toy, out)
    uniform = SCORES.create(name, prior=[0.25] * 4).fit(toy.train)
    no_tau = SCORES.create(name, tau_la=0.0, prior=PRIOR).fit(toy.train)
    for score in (uniform, no_tau):
        np.testing.assert_allclose(score.score(out).numpy(), expected, rtol=2e-5, atol=2e-5)


def test_uniform_prior_ada_msp_and_ada_energy_are_msp_and_energy():
    logits = torch.randn(9, 3, generator=torch.Generator().manual_seed(1))
    out = logit_outputs(logits)
    msp = -torch.softmax(logits, 1).amax(1)
    energy = -torch.logsumexp(logits, 1)
    uniform = [1 / 3] * 3
    torch.testing.assert_close(AdaMSP(prior=uniform).fit(out).score(out), msp + 1 / 3)
    torch.testing.assert_close(AdaEnergy(prior=uniform).fit(out).score(out), energy)


def test_ada_msp_two_classes_by_hand():
    # p = (0.8, 0.2), π = (0.9, 0.1), κ = 0.1: s = 0.8 − 1/2 = 0.3,
    # β = ½ (0.8/0.9 + 0.2/0.1) = 13/9, log β = 0.367725, S = −(0.3 + 0.0367725).
    out = logit_outputs(torch.tensor([[math.log(0.8), math.log(0.2)]]))
    assert AdaMSP(prior=[0.9, 0.1]).fit(out).score(out).item() == pytest.approx(
        -0.3367725, abs=1e-6
    )
    # τ = 2: π̃ = (0.81, 0.01)/0.82, β = ½ (0.8·0.82/0.81 + 0.2·0.82/0.01) = 8.6049383.
    score = AdaMSP(tau_la=2.0, prior=[0.9, 0.1]).fit(out).score(out)
    assert score.item() == pytest.approx(-(0.3 + 0.1 * math.log(8.6049383)), abs=1e-6)
    assert prior_correction(out.logits, torch.tensor([0.9, 0.1])).item() == pytest.approx(
        math.log(13 / 9)
    )


def test_default_kappas_and_prior_from_training_labels():
    kappas = {name: SCORES.create(name).kappa for name in ADA}
    assert kappas == {
        "ada_msp": 0.1,
        "ada_energy": 1.0,
        "ada_bin_disc": 1.0,
        "ada_maha": 0.01,
        "ada_gradnorm": 10.0,
    }
    train = Outputs(
        logits=torch.zeros(6, 3),
        features=torch.zeros(6, 1),
        labels=torch.tensor([0, 0, 0, 1, 2, 2]),
    )
    np.testing.assert_allclose(AdaEnergy().fit(train).prior_.numpy(), [0.5, 1 / 6, 1 / 3])


@pytest.mark.parametrize("name", ADA)
def test_every_hyperparameter_takes_effect(name, toy):
    def run(**params):
        return (
            SCORES.create(name, **{"kappa": 1.0, "tau_la": 1.0, "prior": PRIOR, **params})
            .fit(toy.train)
            .score(toy.ood)
        )

    base = run()
    assert not torch.equal(base, run(kappa=2.0))
    assert not torch.equal(base, run(tau_la=0.5))
    assert not torch.equal(base, run(prior=[0.1, 0.2, 0.3, 0.4]))


@pytest.mark.parametrize("name", ADA)
@pytest.mark.parametrize(
    "params",
    [
        {"kappa": -1.0},
        {"tau_la": -0.5},
        {"prior": [0.5, 0.0, 0.3, 0.2]},
        {"prior": [1.0]},
        {"prior": ["a", "b"]},
        {"prior": [0.5, float("nan")]},
    ],
)
def test_invalid_hyperparameters_raise(name, params):
    with pytest.raises(ConfigError):
        SCORES.create(name, **params)


@pytest.mark.parametrize("name", ADA)
def test_not_fitted_and_prior_of_the_wrong_length(name, toy):
    with pytest.raises(NotFittedError):
        SCORES.create(name).score(toy.id)
    score = SCORES.create(name, prior=[0.5, 0.3, 0.2]).fit(toy.train)
    with pytest.raises(DataError, match="prior has 3 classes"):
        score.score(toy.id)


def closed_form_ada_energy(logits: torch.Tensor, tau: float) -> np.ndarray:
    """``−(LSE(f) + log((1/C) Σ_c p_c / π̃_c))`` with ``π̃ = π^τ / Σ π^τ``, by scipy."""
    f = logits.double().numpy()
    pi = np.asarray(PRIOR) ** tau
    pi = pi / pi.sum()
    p = softmax(f, axis=1)
    return -(logsumexp(f, axis=1) + np.log((p / pi).mean(1)))


@pytest.mark.parametrize(("trained_tau", "used"), [(0.0, 1.0), (1.0, 0.0), (0.25, 0.75), (2, 0)])
def test_default_tau_is_the_residual_of_the_models_logit_adjustment(trained_tau, used):
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(3))
    out = logit_outputs(logits)
    score = AdaEnergy(prior=PRIOR, trained_tau=trained_tau).fit(out)
    assert score.effective_tau == used
    np.testing.assert_allclose(
        score.score(out).numpy(), closed_form_ada_energy(logits, used), rtol=1e-5, atol=1e-6
    )
    if used == 0:  # an LA-trained model: ada_energy is the plain energy
        energy = -torch.logsumexp(logits.double(), 1)
        np.testing.assert_allclose(score.score(out).numpy(), energy.numpy(), rtol=1e-5)
        assert "only the residual" in score.note()
    if trained_tau == 0:
        assert "without logit adjustment" in score.note()


def test_a_forced_tau_overrides_the_residual():
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(4))
    out = logit_outputs(logits)
    forced = AdaEnergy(prior=PRIOR, trained_tau=1.0, tau_la=1.0).fit(out)
    assert forced.effective_tau == 1.0
    assert "forced" in forced.note()
    expected = -(logsumexp(logits.double().numpy() - np.log(PRIOR), axis=1) - math.log(4))
    np.testing.assert_allclose(forced.score(out).numpy(), expected, rtol=1e-5)
