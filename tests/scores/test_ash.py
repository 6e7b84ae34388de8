"""ASH-P/B/S against a numpy implementation (argsort, not top-k) and hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.errors import ConfigError
from oodlab.scores.ash import ASH, num_kept, shape_activations
from oodlab.types import Outputs


def numpy_ash(h: np.ndarray, percentile: float, variant: str) -> np.ndarray:
    n = h.shape[1]
    k = n - int(np.round(n * percentile / 100.0))
    out = np.zeros_like(h)
    for i, row in enumerate(h):
        keep = np.argsort(-row, kind="stable")[:k]
        s1, s2 = row.sum(), row[keep].sum()
        if variant == "p":
            out[i, keep] = row[keep]
        elif variant == "b":
            out[i, keep] = s1 / k
        else:
            out[i, keep] = row[keep] * np.exp(s1 / s2)
    return out


def numpy_energy(logits: np.ndarray) -> np.ndarray:
    top = logits.max(1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(1)))


def test_hand_worked_example():
    feats = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    # p = 60: keep 5 − round(3) = 2 entries (4 and 3); s1 = 10, s2 = 7.
    np.testing.assert_allclose(shape_activations(feats, 60, "p").numpy(), [[4, 0, 3, 0, 0]])
    np.testing.assert_allclose(shape_activations(feats, 60, "b").numpy(), [[5, 0, 5, 0, 0]])
    scale = np.exp(10 / 7)
    np.testing.assert_allclose(
        shape_activations(feats, 60, "s").numpy(), [[4 * scale, 0, 3 * scale, 0, 0]], rtol=1e-12
    )


@pytest.mark.parametrize("variant", ["p", "b", "s"])
@pytest.mark.parametrize("percentile", [65, 90, 95])
def test_scores_against_numpy(variant, percentile):
    g = torch.Generator().manual_seed(percentile)
    h = torch.relu(torch.randn(20, 64, generator=g, dtype=torch.float64))
    weight = torch.randn(5, 64, generator=g, dtype=torch.float64) * 0.1
    bias = torch.randn(5, generator=g, dtype=torch.float64)
    out = Outputs(h @ weight.T + bias, h, torch.zeros(20, dtype=torch.long), {}, weight, bias)
    shaped = numpy_ash(h.numpy(), percentile, variant)
    np.testing.assert_allclose(
        shape_activations(h, percentile, variant).numpy(), shaped, rtol=1e-12
    )
    expected = numpy_energy(shaped @ weight.numpy().T + bias.numpy())
    result = ASH(percentile=percentile, variant=variant).score(out)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5)


def test_number_kept_follows_the_official_rounding():
    # n − round(n·p/100), round half to even like numpy; at least one entry.
    assert [num_kept(512, p) for p in (65, 90, 95)] == [179, 51, 26]
    assert num_kept(10, 65) == 4  # 6.5 rounds to 6
    assert num_kept(10, 99.9) == 1  # never zero


def test_every_hyperparameter_takes_effect(toy):
    base = ASH(percentile=65, variant="s").score(toy.ood)
    assert not torch.equal(base, ASH(percentile=90, variant="s").score(toy.ood))
    assert not torch.equal(base, ASH(percentile=65, variant="p").score(toy.ood))
    assert not torch.equal(base, ASH(percentile=65, variant="b").score(toy.ood))


@pytest.mark.parametrize("params", [{"percentile": -5}, {"percentile": 100}, {"variant": "q"}])
def test_invalid_hyperparameters_raise(params):
    with pytest.raises(ConfigError):
        ASH(**params)
