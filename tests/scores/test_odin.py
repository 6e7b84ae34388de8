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
    # OpenOOD's APS grid (odin.yml): T ∈ {1, 10, 100, 1000} × ε ∈ {0.0014, 0.0028}.
    assert list(ODIN.search_space["temperature"]) == [1.0, 10.0, 100.0, 1000.0]
    assert np.allclose(ODIN.search_space["epsilon"], [0.0014, 0.0028])


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


class TinyConv(nn.Module):
    """A 3-channel conv net with ``features``/``head`` (the backbone contract)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def features(self, x):
        return torch.relu(self.conv(x)).mean((2, 3))

    def head(self, z):
        return self.fc(z)

    def forward(self, x):
        return self.head(self.features(x))


def openood_odin_transcription(net, x_normalised, std, temperature, noise):
    """OpenOOD v1.5 ``ODINPostprocessor.postprocess``, re-typed: the network reads normalised
    inputs; the sign of the gradient of the batch-mean CE is divided per channel by the
    dataset std, the normalised input moves by ``−noise`` times it, and the confidence is the
    max softmax of the perturbed logits at temperature T (higher = more ID)."""
    data = x_normalised.clone().requires_grad_(True)
    output = net(data)
    labels = output.detach().argmax(axis=1)
    loss = nn.CrossEntropyLoss()(output / temperature, labels)
    loss.backward()
    gradient = torch.ge(data.grad.detach(), 0)
    gradient = (gradient.float() - 0.5) * 2
    for c in range(3):
        gradient[:, c] = gradient[:, c] / std[c]
    temp_inputs = torch.add(data.detach(), gradient, alpha=-noise)
    with torch.no_grad():
        out = net(temp_inputs) / temperature
    return torch.softmax(out, dim=1).max(dim=1).values


@pytest.mark.parametrize(("temperature", "noise"), [(1.0, 0.0014), (10.0, 0.0028), (1.0, 0.05)])
def test_odin_on_pixel_inputs_of_a_self_normalising_model_is_openoods_odin(temperature, noise):
    """oodlab feeds [0, 1] images to a model that normalises inside; OpenOOD feeds normalised
    images to the bare network and divides its step by the std. The two are the same score:
    no division is needed (or wanted) in oodlab for a model that normalises itself."""
    from oodlab.models.heads import WithHeads

    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    bare = TinyConv().eval()
    model = WithHeads(bare, mean=mean, std=std).eval()
    pixels = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    normalised = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    expected = openood_odin_transcription(bare, normalised, std, temperature, noise)
    got = odin(model, pixels, temperature, noise)
    torch.testing.assert_close(got, -expected, rtol=1e-5, atol=1e-6)
    # Dividing by the model's own std again is a different (larger) step.
    twice = odin(model, pixels, temperature, noise, input_std=std)
    assert (twice + expected).abs().max() > 10 * (got + expected).abs().max()


def test_odin_grid_is_openoods_and_iodin_grid_is_the_ascood_forks():
    from oodlab.scores.iodin import IODIN

    assert ODIN.search_space == {
        "temperature": (1.0, 10.0, 100.0, 1000.0),
        "epsilon": (0.0014, 0.0028),
    }
    assert IODIN.search_space["epsilon"] == tuple(round(0.0014 * k, 4) for k in range(1, 8))
