"""ViM: residual by an independent numpy SVD, α by hand, and the score as the exact logit of
the paper's virtual-class softmax probability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from oodlab.errors import ConfigError, NotFittedError
from oodlab.scores.vim import ViM, default_dim
from oodlab.types import Outputs

D, C = 10, 4


@pytest.fixture
def problem() -> tuple[Outputs, Outputs]:
    """Features with a clearly ordered spectrum (so the principal subspace is unique) and a
    head with a bias (so the origin u is not 0)."""
    g = torch.Generator().manual_seed(0)
    scales = torch.linspace(4.0, 0.3, D, dtype=torch.float64)
    weight = torch.randn(C, D, generator=g, dtype=torch.float64)
    bias = torch.randn(C, generator=g, dtype=torch.float64)

    def outputs(n: int, spread: float) -> Outputs:
        h = torch.randn(n, D, generator=g, dtype=torch.float64) * scales * spread + 1.0
        labels = torch.zeros(n, dtype=torch.long)
        return Outputs(h @ weight.T + bias, h, labels, head_weight=weight, head_bias=bias)

    return outputs(400, 1.0), outputs(30, 1.5)


@pytest.mark.parametrize("dim", [3, 6])
def test_against_numpy_svd_and_the_paper_probability(problem, dim):
    train, test = problem
    score = ViM(dim=dim).fit(train)
    w, b = train.head_weight.numpy(), train.head_bias.numpy()
    origin = -np.linalg.pinv(w) @ b
    np.testing.assert_allclose(w @ origin + b, 0.0, atol=1e-10)  # u is mapped to zero logits
    centred = train.features.numpy() - origin
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # right singular vectors of (h - u)
    principal = vt[:dim].T

    def residual(h: np.ndarray) -> np.ndarray:
        x = h - origin
        return np.linalg.norm(x - x @ principal @ principal.T, axis=1)

    np.testing.assert_allclose(score.residual_norm(test).numpy(), residual(test.features.numpy()))
    alpha = train.logits.numpy().max(1).sum() / residual(train.features.numpy()).sum()
    assert score.alpha_ == pytest.approx(alpha, rel=1e-9)

    virtual = alpha * residual(test.features.numpy())
    logits = test.logits.numpy()
    # The paper's score: the softmax probability P0 of the virtual logit among [f(x), v].
    log_p0 = virtual - logsumexp(np.c_[logits, virtual], axis=1)
    log_rest = logsumexp(logits, axis=1) - logsumexp(np.c_[logits, virtual], axis=1)
    result = score.score(test).double().numpy()
    np.testing.assert_allclose(result, log_p0 - log_rest, rtol=1e-5, atol=1e-5)  # logit(P0)
    # ... which is minus the official code's ID-ness ``−v + LSE(f)``.
    np.testing.assert_allclose(result, -(-virtual + logsumexp(logits, axis=1)), rtol=1e-5)


def test_default_dim_follows_the_paper():
    assert [default_dim(d) for d in (4096, 2048, 1024, 768, 512, 100)] == [
        1000,
        1000,
        512,
        512,
        256,
        50,
    ]


def test_default_and_clipped_dim(problem):
    train, _ = problem
    assert ViM().fit(train).dim_ == D // 2
    with pytest.warns(UserWarning, match="dim=256"):
        clipped = ViM(dim=256).fit(train)
    assert clipped.dim_ == D - 1
    assert clipped.residual_basis_.shape == (D, 1)


def test_dim_takes_effect(problem):
    train, test = problem
    assert not torch.equal(ViM(dim=2).fit(train).score(test), ViM(dim=7).fit(train).score(test))


@pytest.mark.parametrize("dim", [0, -3, 2.5, True])
def test_invalid_dim_raises(dim):
    with pytest.raises(ConfigError):
        ViM(dim=dim)


def test_not_fitted(problem):
    with pytest.raises(NotFittedError):
        ViM().score(problem[1])


def test_tuning_grid_adapts_to_the_feature_dimension(toy):
    from oodlab.eval.tuning import tune_score
    from oodlab.scores.vim import ViM, vim_grid

    assert vim_grid(2048) == (256, 1000)  # OpenOOD's grid where it fits
    assert vim_grid(512) == (64, 128, 256, 384)  # 1000 would clip to 511
    assert vim_grid(12) == (1, 3, 6, 9)
    assert ViM().grid(None) == {"dim": (256, 1000)}
    assert ViM().grid(toy.train) == {"dim": (1, 3, 6, 9)}
    _, tuning = tune_score(ViM(), "vim", toy.train, None, toy.id, toy.ood)
    assert [t["params"]["dim"] for t in tuning["trials"]] == [1, 3, 6, 9]
    low, high = (ViM(dim=d).fit(toy.train).score(toy.ood) for d in (1, 9))
    assert not torch.equal(low, high)  # the grid's values give different scores
