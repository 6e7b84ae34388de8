"""Contract tests over every registered score (DESIGN.md §6, layer 2).

Per-score value tests live beside this file; here every registry entry must honour
the shared contract: shape, finiteness, batch-size invariance, determinism, the
not-fitted error, invalid hyper-parameters, hyper-parameters that take effect, and
the sign pin (far-away, flat-logit points score higher than ID points).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import oodlab.scores
from oodlab.errors import ConfigError, NotFittedError
from oodlab.scores import SCORES, InputGradientScore, Score

# Hyper-parameters a score cannot run without, for the toy problem of conftest.py.
REQUIRED_KWARGS: dict[str, dict[str, Any]] = {
    "mos": {"group_sizes": [2, 2]},
}

# One invalid value per hyper-parameter; every hyper-parameter of every score must appear.
_ADA = {"kappa": -1.0, "tau_la": -0.5, "prior": [0.5, 0.0, 0.3, 0.2], "trained_tau": -1.0}
INVALID: dict[str, dict[str, Any]] = {
    "energy": {"temperature": 0.0},
    "odin": {"temperature": -1.0, "epsilon": -0.1, "input_std": [0.0, 1.0]},
    "iodin": {"temperature": 0.0, "epsilon": -1.0, "input_std": [-0.2]},
    "knn": {"k": 0, "bank_fraction": 0.0, "backend": "annoy", "seed": -1, "index": "lsh"},
    "react": {"percentile": 101},
    "scale": {"percentile": 100, "space": "logits"},
    "nnguide": {"k": 0, "bank_fraction": 1.5},
    "relation": {"power": 0.0, "threshold": 1.0},
    "ash_s": {"percentile": -5},
    "ash_b": {"percentile": 100},
    "kl_matching": {"template_labels": "guessed", "zero_template": "zero"},
    "mcm": {"temperature": 0.0, "class_embeddings": torch.ones(3)},
    "mos": {"group_sizes": [1, 3]},
    "vim": {"dim": 0},
    "mahalanobis_ensemble": {"epsilon": -0.1, "layer_weights": []},
    **{
        name: {"prior": [1.0, 0.0, 1.0, 1.0], "balance": "twice", "batch_size": 0, "seed": -2}
        for name in ("patt_energy", "patt_energy_official")
    },
    **{
        name: _ADA for name in ("ada_msp", "ada_energy", "ada_bin_disc", "ada_maha", "ada_gradnorm")
    },
}

# Grids scaled to the toy problem (ViM's 256 / 1000 exceed its 12 feature dimensions).
TOY_GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "vim": {"dim": (2, 8)},
    "knn": {"k": (5, 50)},
    "nnguide": {"k": (5, 50)},
}

# Scores whose sign cannot be pinned on the generic toy problem, and why.
NO_SIGN_PIN = {
    "mos": "needs logits of a group-softmax model; pinned in test_mos.py",
}

NAMES = SCORES.names()


def build(name: str, **overrides: Any) -> Score:
    return SCORES.create(name, **{**REQUIRED_KWARGS.get(name, {}), **overrides})


def run(score: Score, toy, which: str) -> torch.Tensor:
    if isinstance(score, InputGradientScore):
        x = {"id": toy.x_id, "ood": toy.x_ood}[which]
        return score.score_inputs(toy.model, x)
    return score.score({"id": toy.id, "ood": toy.ood}[which])


def fitted(name: str, toy, **overrides: Any) -> Score:
    score = build(name, **overrides)
    fit_inputs = getattr(score, "fit_inputs", None)
    if callable(fit_inputs):
        fit_inputs(toy.model, [(toy.x_train, toy.y_train)])
    return score.fit(toy.train, aux=toy.aux)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_finite_and_deterministic(name, toy):
    torch.manual_seed(0)
    first = run(fitted(name, toy), toy, "id")
    torch.manual_seed(1)
    second = run(fitted(name, toy), toy, "id")
    assert first.shape == (len(toy.x_id),)
    assert first.dtype.is_floating_point
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_invariance(name, toy):
    score = fitted(name, toy)
    whole = run(score, toy, "ood")
    if isinstance(score, InputGradientScore):
        parts = [score.score_inputs(toy.model, chunk) for chunk in toy.x_ood.split(7)]
    else:
        index = torch.arange(len(toy.ood))
        parts = [score.score(toy.ood.subset(chunk)) for chunk in index.split(7)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [e.name for e in SCORES if e.requires_fit])
def test_not_fitted_error(name, toy):
    score = build(name)
    with pytest.raises(NotFittedError, match="fit"):
        run(score, toy, "id")


@pytest.mark.parametrize("name", NAMES)
def test_every_hyperparameter_has_an_invalid_value_that_raises(name):
    params = SCORES.get(name).factory.param_names()
    invalid = INVALID.get(name, {})
    missing = sorted(set(params) - set(invalid))
    if missing:
        pytest.fail(f"add invalid values for {name} hyper-parameters {missing} to INVALID")
    for param, value in invalid.items():
        with pytest.raises(ConfigError):
            build(name, **{param: value})


@pytest.mark.parametrize("name", [e.name for e in SCORES if e.factory.search_space])
def test_search_space_hyperparameters_take_effect(name, toy):
    space = {**SCORES.get(name).factory.search_space, **TOY_GRIDS.get(name, {})}
    for param, values in space.items():
        if len(values) < 2:  # a one-point grid (OpenOOD's energy T = 1) is not searched
            continue
        a, b = values[0], values[-1]
        scores_a = run(fitted(name, toy, **{param: a}), toy, "ood")
        scores_b = run(fitted(name, toy, **{param: b}), toy, "ood")
        # A no-op hyper-parameter gives bit-identical scores.
        assert not torch.equal(scores_a, scores_b), f"{name}.{param} has no effect"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NO_SIGN_PIN])
def test_sign_pin_far_flat_points_score_higher(name, toy):
    score = fitted(name, toy)
    id_scores, ood_scores = run(score, toy, "id").numpy(), run(score, toy, "ood").numpy()
    labels = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    assert roc_auc_score(labels, np.r_[id_scores, ood_scores]) > 0.9


def test_every_score_module_registers_something():
    registered = {entry.module for entry in SCORES}
    for info in pkgutil.iter_modules(oodlab.scores.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = f"oodlab.scores.{info.name}"
        importlib.import_module(module)
        assert module in registered, f"{module} registers no score (or is not imported)"


def test_every_score_has_a_paper_and_declares_its_needs():
    for entry in SCORES:
        assert entry.paper, entry.name
        assert entry.needs, entry.name
