"""i-ODIN: one element moves per sample, the one of largest |gradient|, by ε/σ; brute force."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from oodlab.errors import ConfigError, DataError
from oodlab.scores import SCORES
from oodlab.scores.iodin import IODIN, iodin
from oodlab.scores.odin import odin


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


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 5))
    return net.eval()


def images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(1))


def test_epsilon_zero_is_temperature_scaled_msp_by_hand(toy):
    logits = toy.ood.logits[:6].tolist()
    expected = []
    for row in logits:
        weights = [math.exp(z / 4.0) for z in row]
        expected.append(-max(weights) / sum(weights))
    assert iodin(toy.model, toy.x_ood[:6], 4.0, 0.0).tolist() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("input_std", [None, (0.5, 0.25, 2.0)])
def test_exactly_the_largest_gradient_element_moves_by_eps_over_its_channel_std(input_std):
    model, x, eps, t = small_cnn(), images(), 0.3, 2.0
    x_before = x.clone()
    recorder = Recorder(model)
    iodin(recorder, x, t, eps, input_std)
    moved = recorder.inputs[-1] - x
    # Exactly one scalar per sample changes ...
    assert (moved.reshape(len(x), -1) != 0).sum(1).tolist() == [1] * len(x)
    grad = explicit_ce_gradient(model, x, t)
    for i in range(len(x)):
        # ... the one with the largest |gradient| over all C·H·W elements ...
        c, h, w = (int(v) for v in torch.nonzero(moved[i])[0])
        assert grad[i].abs().max() == grad[i, c, h, w].abs()
        # ... by −ε·sign(g)/σ of its channel.
        sigma = 1.0 if input_std is None else input_std[c]
        sign = 1.0 if grad[i, c, h, w] >= 0 else -1.0
        assert moved[i, c, h, w].item() == pytest.approx(-eps * sign / sigma, rel=1e-5)
    assert torch.equal(x, x_before)
    assert all(p.grad is None for p in model.parameters())


def test_best_single_coordinate_move_by_brute_force(toy):
    # Try every single-coordinate move x ± ε·e_j (24 on the toy) and keep the largest softmax
    # of the predicted class: i-ODIN's one-element step must be that best move.
    x, eps = toy.x_id[::4], 0.05
    predicted = toy.model(x).argmax(1)
    best = torch.full((len(x),), -1.0)
    for j in range(x.shape[1]):
        for direction in (-1.0, 1.0):
            moved = x.clone()
            moved[:, j] += direction * eps
            with torch.no_grad():
                p = torch.softmax(toy.model(moved), 1).gather(1, predicted[:, None]).squeeze(1)
            best = torch.maximum(best, p)
    torch.testing.assert_close(iodin(toy.model, x, 1.0, eps), -best)


def test_step_is_odins_step_restricted_to_one_element():
    model, x = small_cnn(), images()
    odin_recorder, iodin_recorder = Recorder(model), Recorder(model)
    odin(odin_recorder, x, 1.0, 0.1, (0.5, 0.5, 0.5))
    iodin(iodin_recorder, x, 1.0, 0.1, (0.5, 0.5, 0.5))
    odin_step = odin_recorder.inputs[-1] - x
    iodin_step = iodin_recorder.inputs[-1] - x
    mask = iodin_step != 0
    torch.testing.assert_close(iodin_step[mask], odin_step[mask])


def test_batch_size_invariance():
    model, x = small_cnn(), images(7)
    whole = iodin(model, x, 10.0, 0.5)
    one_by_one = torch.cat([iodin(model, x[i : i + 1], 10.0, 0.5) for i in range(7)])
    torch.testing.assert_close(whole, one_by_one)


def test_class_matches_function_and_is_registered(toy):
    score = SCORES.create("iodin", temperature=2.0, epsilon=0.5)
    assert isinstance(score, IODIN)
    expected = iodin(toy.model, toy.x_id, 2.0, 0.5)
    torch.testing.assert_close(score.score_inputs(toy.model, toy.x_id), expected)
    assert SCORES.get("iodin").needs == ("model", "input_grad")
    assert IODIN.search_space["temperature"] == (1.0, 10.0, 100.0, 1000.0)
    assert len(IODIN.search_space["epsilon"]) == 7
    with pytest.raises(DataError, match="2 values"):
        iodin(small_cnn(), images(), 1.0, 0.1, (0.5, 0.5))


def test_every_hyperparameter_changes_the_scores(toy):
    x = toy.x_ood
    assert not torch.equal(iodin(toy.model, x, 1.0, 0.1), iodin(toy.model, x, 1000.0, 0.1))
    assert not torch.equal(iodin(toy.model, x, 1.0, 0.0), iodin(toy.model, x, 1.0, 0.0098))
    model, images_x = small_cnn(), images()
    plain = IODIN(1.0, 0.5).score_inputs(model, images_x)
    divided = IODIN(1.0, 0.5, (0.2, 0.2, 0.2)).score_inputs(model, images_x)
    assert not torch.equal(plain, divided)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -5.0},
        {"epsilon": -1.0},
        {"input_std": [-0.2]},
        {"input_std": []},
        {"input_std": 0.5},
    ],
)
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ConfigError):
        IODIN(**kwargs)
