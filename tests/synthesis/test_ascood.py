"""ASCOOD's virtual-outlier synthesis against hand-worked values and brute force."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from oodlab.errors import ConfigError
from oodlab.synthesis.ascood import (
    alpha_schedule,
    gaussian_outliers,
    gradient_outliers,
    shuffle_outliers,
    synthesize,
    top_fraction_mask,
    true_class_gradient,
)


def test_alpha_schedule_first_middle_last_epoch():
    # (300 - 30) * (1 - e/10) + 30, by hand.
    assert alpha_schedule(1, 10, 300.0, 30.0) == pytest.approx(273.0)
    assert alpha_schedule(5, 10, 300.0, 30.0) == pytest.approx(165.0)
    assert alpha_schedule(10, 10, 300.0, 30.0) == pytest.approx(30.0)
    assert alpha_schedule(3, 30, 0.1, 0.1) == pytest.approx(0.1)  # constant α (fine-grained)
    with pytest.raises(ConfigError, match="1-based"):
        alpha_schedule(0, 10, 300.0, 30.0)


class Linear(nn.Module):
    """logits = W · flatten(x): the input gradient of logit y is exactly W[y]."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def test_gradient_outliers_touch_exactly_the_top_fraction_and_raise_the_true_logit():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 2 * 5 * 5, generator=g)
    model = Linear(weight)
    x = torch.rand(4, 2, 5, 5, generator=g)
    y = torch.tensor([0, 2, 1, 2])
    grad = true_class_gradient(model, x, y)
    torch.testing.assert_close(grad.flatten(1), weight[y])  # the analytic gradient
    assert model.weight.grad is None  # parameters untouched

    alpha, p_inv = 0.7, 0.1
    x_out = gradient_outliers(x, grad, alpha, p_inv)
    n = math.floor(50 * p_inv)  # ⌊C·H·W·p_inv⌋ = 5 scalar elements
    for i in range(4):
        changed = (x_out[i] != x[i]).flatten().nonzero().flatten()
        expected = weight[y[i]].abs().argsort(descending=True)[:n]  # brute-force top-n
        assert sorted(changed.tolist()) == sorted(expected.tolist())
        # logit_y rises by α·Σ_{top} W_y², computed from the selected weights alone.
        with torch.no_grad():
            rise = model(x_out[i : i + 1])[0, y[i]] - model(x[i : i + 1])[0, y[i]]
        assert float(rise) == pytest.approx(alpha * float((weight[y[i], expected] ** 2).sum()))


def test_attribution_runs_in_eval_mode_and_restores_every_module_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    net(torch.rand(2, 1, 6, 6))
    net.train()
    net[1].eval()  # a frozen part stays frozen after the pass
    x, y = torch.rand(5, 1, 6, 6), torch.tensor([0, 1, 2, 0, 1])
    stats = net[1].running_mean.clone()
    grad = true_class_gradient(net, x, y)
    assert [m.training for m in net] == [True, False, True, True]
    torch.testing.assert_close(net[1].running_mean, stats)  # eval mode: no BN update
    # Eval mode makes samples independent: one sample alone gets the same gradient.
    torch.testing.assert_close(true_class_gradient(net, x[2:3], y[2:3]), grad[2:3])
    net.eval()
    x_out = synthesize(net, x, y, "gradient", 1e-3, 0.2)
    with torch.no_grad():
        before, after = (net(v).gather(1, y[:, None]) for v in (x, x_out))
    assert bool((after > before).all())


def test_top_fraction_mask_counts():
    values = torch.tensor([[3.0, 1.0, 4.0, 1.5, 9.0, 2.0, 6.0, 5.0]])
    assert top_fraction_mask(values, 0.25).tolist() == [[0, 0, 0, 0, 1, 0, 1, 0]]
    assert top_fraction_mask(values, 0.1).sum() == 0  # ⌊0.8⌋ = 0 elements
    with pytest.raises(ConfigError, match="p_inv"):
        top_fraction_mask(values, 1.5)


def test_shuffle_permutes_the_most_salient_pixels_among_themselves():
    torch.manual_seed(1)
    x = torch.rand(3, 2, 4, 4)
    grad = torch.randn(3, 2, 4, 4)
    out = shuffle_outliers(x, grad, 0.5)  # ⌊16·0.5⌋ = 8 pixels per image
    for i in range(3):
        saliency = grad[i].exp().sum(0).flatten()  # Σ_c exp(G), evaluated directly
        top = set(saliency.argsort(descending=True)[:8].tolist())
        moved = {
            p
            for p in range(16)
            if not torch.equal(out[i, :, p // 4, p % 4], x[i, :, p // 4, p % 4])
        }
        assert moved <= top
        assert len(moved) >= 2
        pixels = lambda t: sorted(map(tuple, t.flatten(1).T.tolist()))  # noqa: E731
        assert pixels(out[i]) == pixels(x[i])  # a permutation: the same pixels, channels together


def test_gaussian_outliers_are_pure_noise_scaled_by_alpha():
    torch.manual_seed(3)
    a = gaussian_outliers(torch.zeros(64, 3, 8, 8), 2.0)
    torch.manual_seed(3)
    b = gaussian_outliers(torch.full((64, 3, 8, 8), 5.0), 2.0)
    torch.testing.assert_close(a, b)  # does not depend on x (not x + noise)
    assert abs(float(a.mean())) < 0.05
    assert float(a.std()) == pytest.approx(2.0, rel=0.03)


def test_unknown_ood_type_fails_with_one_line():
    with pytest.raises(ConfigError, match="ood_type"):
        synthesize(
            Linear(torch.zeros(2, 4)),
            torch.zeros(1, 1, 2, 2),
            torch.zeros(1, dtype=torch.long),
            "mixup",
            1.0,
            0.1,
        )  # type: ignore[arg-type]
