"""ODIN against MSP, hand-computed softmaxes, brute force, and independently computed gradients."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from oodlab.errors import ConfigError, DataError
from oodlab.scores import SCORES
from oodlab.scores.msp import msp
from oodlab.scores.odin import ODIN, odin


class Recorder(nn.Module):
    """Wraps a model and keeps a copy of every input batch it is called on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.model(x)


def explicit_ce_gradient(model, x, temperature):
    """∇_x Σ_i [logsumexp(f(x_i)/T) − f(x_i)_ŷ/T], the CE written out by hand."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    label = logits.argmax(1)
    scaled = logits / temperature
    loss = (torch.logsumexp(scaled, 1) - scaled.gather(1, label[:, None]).squeeze(1)).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def small_cnn(channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )
    return net.eval()


def images(n: int = 6, channels: int = 3) -> torch.Tensor:
    return torch.randn(n, channels, 4, 4, generator=torch.Generator().manual_seed(1))


def hand_max_softmax(logits: torch.Tensor, temperature: float) -> list[float]:
    """max_k exp(z_k/T) / Σ_j exp(z_j/T), one row at a time with math.exp."""
    out = []
    for row in logits.tolist():
        m = max(row)
        weights = [math.exp((z - m) / temperature) for z in row]
        out.append(max(weights) / sum(weights))
    return out


def test_epsilon_zero_temperature_one_is_msp_of_cached_logits(toy):
    torch.testing.assert_close(odin(toy.model, toy.x_id, 1.0, 0.0), msp(toy.id.logits))
    torch.testing.assert_close(odin(toy.model, toy.x_ood, 1.0, 0.0), msp(toy.ood.logits))


@pytest.mark.parametrize("temperature", [2.0, 1000.0])
def test_epsilon_zero_is_temperature_scaled_msp_by_hand(toy, temperature):
    expected = [-s for s in hand_max_softmax(toy.ood.logits[:8], temperature)]
    got = odin(toy.model, toy.x_ood[:8], temperature, 0.0)
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("temperature", "epsilon"), [(1.0, 0.1), (5.0, 0.3)])
def test_step_direction_is_the_best_sign_pattern_by_brute_force(toy, temperature, epsilon):
    # The toy logits are the first 4 input coordinates. Among all 2^4 sign patterns s of a
    # step x − ε·s on those coordinates (the other 8 coordinates have a zero gradient and
    # get s = +1), ODIN's pattern gives the largest softmax of the predicted class; no
    # gradient is used here, only the 16 forward passes.
    x = torch.cat([toy.x_id[::10], toy.x_ood[::10]])
    predicted = toy.model(x).argmax(1)
    best = torch.full((len(x),), -1.0)
    for pattern in itertools.product([-1.0, 1.0], repeat=4):
        s = torch.ones(x.shape[1])
        s[:4] = torch.tensor(pattern)
        with torch.no_grad():
            p = torch.softmax(toy.model(x - epsilon * s) / temperature, 1)
        best = torch.maximum(best, p.gather(1, predicted[:, None]).squeeze(1))
    torch.testing.assert_close(odin(toy.model, x, temperature, epsilon), -best)


def test_step_raises_the_max_softmax_of_id_points(toy):
    assert (odin(toy.model, toy.x_id, 1.0, 0.01) < odin(toy.model, toy.x_id, 1.0, 0.0)).all()


@pytest.mark.parametrize("temperature", [1.0, 10.0])
def test_perturbed_input_is_x_minus_eps_sign_of_the_explicit_gradient(temperature):
    model, x = small_cnn(), images()
    x_before = x.clone()
    recorder = Recorder(model)
    scores = odin(recorder, x, temperature, 0.02)
    grad = explicit_ce_gradient(model, x, temperature)
    expected_tilde = x - 0.02 * torch.where(grad >= 0, 1.0, -1.0)
    torch.testing.assert_close(recorder.inputs[0], x)  # the gradient pass sees x itself
    torch.testing.assert_close(recorder.inputs[-1], expected_tilde)
    with torch.no_grad():
        logits = model(expected_tilde)
    assert scores.tolist() == pytest.approx([-s for s in hand_max_softmax(logits, temperature)])
    assert torch.equal(x, x_before)  # not modified in place
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients


def test_zero_gradient_counts_as_positive_sign(toy):
    # The head ignores coordinates 4..11, so their gradient is exactly 0: they move by −ε.
    recorder = Recorder(toy.model)
    odin(recorder, toy.x_id[:5], 1.0, 0.25)
    torch.testing.assert_close(recorder.inputs[-1][:, 4:], toy.x_id[:5, 4:] - 0.25)


def test_step_is_divided_by_the_channel_std():
    model, x = small_cnn(), images()
    std = (0.5, 0.25, 2.0)
    recorder = Recorder(model)
    odin(recorder, x, 1.0, 0.01, std)
    sign = torch.where(explicit_ce_gradient(model, x, 1.0) >= 0, 1.0, -1.0)
    expected = x.clone()
    for c in range(3):
        expected[:, c] -= 0.01 * sign[:, c] / std[c]
    torch.testing.assert_close(recorder.inputs[-1], expected)
    # One std applies to every channel.
    torch.testing.assert_close(
        odin(model, x, 1.0, 0.01, (0.5,)), odin(model, x, 1.0, 0.01, [0.5] * 3)
    )
    with pytest.raises(DataError, match="3 channels"):
        odin(model, x, 1.0, 0.01, (0.5, 0.5))


def test_batch_size_invariance():
    model, x = small_cnn(), images(7)
    whole = odin(model, x, 10.0, 0.05, (0.3, 0.3, 0.3))
    one_by_one = torch.cat(
        [odin(model, x[i : i + 1], 10.0, 0.05, (0.3, 0.3, 0.3)) for i in range(7)]
    )
    torch.testing.assert_close(whole, one_by_one)


def test_eval_mode_kept_and_works_under_no_grad():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.Dropout(0.5), nn.Linear(16, 3)).eval()
    x = images()
    first = odin(model, x, 1.0, 0.05)
    with torch.no_grad():
        second = odin(model, x, 1.0, 0.05)
    torch.testing.assert_close(first, second)  # dropout stays off, gradients still flow
    assert not model.training
    with torch.inference_mode(), pytest.raises(DataError, match="inference_mode"):
        odin(model, x, 1.0, 0.05)


def test_class_matches_function_and_is_registered(toy):
    score = SCORES.create("odin", temperature=3.0, epsilon=0.05)
    assert isinstance(score, ODIN)
    expected = odin(toy.model, toy.x_ood, 3.0, 0.05)
    torch.testing.assert_close(score.score_inputs(toy.model, toy.x_ood), expected)
    assert SCORES.get("odin").needs == ("model", "input_grad")
    assert ODIN().get_params() == {"temperature": 1000.0, "epsilon": 0.0014, "input_std": None}
    # OpenOOD's APS grid: T ∈ {1, 10, 100, 1000} × ε ∈ 0.0014·{1..7}.
    assert list(ODIN.search_space["temperature"]) == [1.0, 10.0, 100.0, 1000.0]
    assert np.allclose(ODIN.search_space["epsilon"], 0.0014 * np.arange(1, 8))


def test_every_hyperparameter_changes_the_scores(toy):
    x = toy.x_ood
    assert not torch.equal(
        ODIN(1.0, 0.01).score_inputs(toy.model, x), ODIN(1000.0, 0.01).score_inputs(toy.model, x)
    )
    assert not torch.equal(
        ODIN(1000.0, 0.0).score_inputs(toy.model, x),
        ODIN(1000.0, 0.0098).score_inputs(toy.model, x),
    )
    model, images_x = small_cnn(), images()
    plain = ODIN(1.0, 0.05).score_inputs(model, images_x)
    divided = ODIN(1.0, 0.05, (0.2, 0.2, 0.2)).score_inputs(model, images_x)
    assert not torch.equal(plain, divided)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"temperature": True},
        {"temperature": float("nan")},
        {"epsilon": -0.001},
        {"epsilon": float("nan")},
        {"input_std": []},
        {"input_std": [0.0, 1.0]},
        {"input_std": (-0.2,)},
        {"input_std": 0.5},
        {"input_std": "0.5"},
        {"input_std": [float("inf")]},
        {"input_std": [True]},
    ],
)
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ConfigError):
        ODIN(**kwargs)
