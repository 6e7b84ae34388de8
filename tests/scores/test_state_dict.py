"""Every score's fitted state exports as plain tensors and scalars and restores exactly."""

from __future__ import annotations

import pytest
import torch

from oodlab.scores import SCORES, InputGradientScore
from oodlab.scores._state import PLAIN

REQUIRED = {"mos": {"group_sizes": [2, 2]}}


def _fitted(name: str, toy):
    score = SCORES.create(name, **REQUIRED.get(name, {}))
    fit_inputs = getattr(score, "fit_inputs", None)
    if callable(fit_inputs):
        fit_inputs(toy.model, [(toy.x_train, toy.y_train)])
    return score.fit(toy.train, aux=toy.aux)


def _run(score, toy):
    if isinstance(score, InputGradientScore):
        return score.score_inputs(toy.model, toy.x_ood)
    return score.score(toy.ood)


@pytest.mark.parametrize("name", SCORES.names())
def test_state_dict_is_plain_and_restores_the_scores(name, toy):
    score = _fitted(name, toy)
    state = score.state_dict()
    assert all(isinstance(v, (torch.Tensor, *PLAIN)) for v in state.values()), state
    fresh = SCORES.create(name, **score.get_params()).load_state_dict(state)
    torch.testing.assert_close(_run(fresh, toy), _run(score, toy))


def test_knn_rebuilds_its_faiss_index_instead_of_storing_it(toy):
    score = SCORES.create("knn", k=3).fit(toy.train)
    assert "index_" not in score.state_dict()
    fresh = SCORES.create("knn", k=3).load_state_dict(score.state_dict())
    assert fresh.index_ is not None
    assert fresh.index_.ntotal == len(toy.train)


def test_lists_and_nested_scores_flatten_to_named_keys(toy):
    ada = SCORES.create("ada_maha").fit(toy.train)
    keys = set(ada.state_dict())
    assert {"prior_", "mahalanobis_.__score__", "mahalanobis_.precision_"} <= keys
    ensemble = SCORES.create("mahalanobis_ensemble")
    ensemble.fit_inputs(toy.model, [(toy.x_train, toy.y_train)])
    state = ensemble.state_dict()
    assert state["means_.__len__"] == len(ensemble.means_)
    torch.testing.assert_close(state["precisions_.1"], ensemble.precisions_[1])
