"""Declared needs: a score with a new kind of need is evaluated by adding its provider, not by
editing ``evaluate``; every registered need has a provider."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor
from torch.utils.data import TensorDataset

from oodlab.errors import ConfigError
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig
from oodlab.eval.needs import NEEDS, EvalContext, Provider, register_need
from oodlab.scores import SCORES, Score


class InputNorm(Score):
    """Toy score: ``scale · ‖x‖₂`` of the raw input (higher = more OOD); needs the inputs."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def score_batch(self, x: Tensor) -> Tensor:
        return self.scale * x.flatten(1).norm(dim=1)


def _score_raw_inputs(ctx: EvalContext, score: Score, name: str) -> tuple:
    assert isinstance(score, InputNorm)
    _, id_index = ctx.ready_id()

    def run(dataset: TensorDataset) -> Tensor:
        return score.score_batch(dataset.tensors[0])

    return (
        run(ctx.id_test)[id_index],  # type: ignore[arg-type]
        {k: run(v) for k, v in ctx.ood.items()},  # type: ignore[arg-type]
        {k: run(v) for k, v in ctx.fake.items()},  # type: ignore[arg-type]
    )


def _scale_from_model(model, class_counts, params) -> dict:
    # A hyper-parameter that describes the model: the number of its classes.
    return {"scale": float(model.classifier.out_features)}


@pytest.fixture
def toy_need():
    register_need(
        "raw_inputs",
        Provider("toy: the raw input tensors", score=_score_raw_inputs, build=_scale_from_model),
    )
    SCORES.register("toy_input_norm", needs=("raw_inputs",), paper="test only")(InputNorm)
    yield
    del NEEDS["raw_inputs"]
    del SCORES._entries["toy_input_norm"]


def test_a_score_with_a_new_need_is_evaluated_through_its_provider(toy, toy_need, tmp_path):
    ood = {"far": TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))}
    result = evaluate(
        toy.model,
        TensorDataset(toy.x_id, toy.y_id),
        ood,
        ["toy_input_norm", "msp"],
        extract_config=ExtractConfig(batch_size=32, device="cpu", cache_dir=tmp_path, quiet=True),
    )
    got = result.scores["toy_input_norm"]
    assert got.params == {"scale": 4.0}  # built from the model by the need's provider
    id_norm, ood_norm = toy.x_id.norm(dim=1).numpy(), toy.x_ood.norm(dim=1).numpy()
    labels = np.r_[np.zeros(len(id_norm)), np.ones(len(ood_norm))]
    expected = roc_auc_score(labels, np.r_[id_norm, ood_norm])
    assert got.per_set["far"]["auroc"] == pytest.approx(expected)
    np.testing.assert_allclose(result.raw["toy_input_norm"]["id"], 4.0 * id_norm, rtol=1e-6)
    assert not got.needs_network


def test_an_undeclared_need_raises_one_line(toy, tmp_path):
    SCORES.register("toy_unknown_need", needs=("telepathy",), paper="test only")(InputNorm)
    try:
        with pytest.raises(ConfigError, match=r"'telepathy'.*register_need"):
            evaluate(
                toy.model,
                TensorDataset(toy.x_id, toy.y_id),
                {"far": TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))},
                ["toy_unknown_need"],
                extract_config=ExtractConfig(device="cpu", cache_dir=tmp_path, quiet=True),
            )
    finally:
        del SCORES._entries["toy_unknown_need"]


@pytest.mark.parametrize("name", SCORES.names())
def test_every_declared_need_has_a_provider(name):
    for need in SCORES.get(name).needs:
        assert need in NEEDS or need.split(":", 1)[0] in NEEDS, (name, need)


@pytest.mark.parametrize("name", SCORES.names())
def test_a_prior_parameter_is_a_declared_need(name):
    # The class prior is filled in from the training counts only for scores that declare it.
    factory = SCORES.get(name).factory
    if isinstance(factory, type) and issubclass(factory, Score):
        assert ("prior" in factory.param_names()) == ("prior" in SCORES.get(name).needs), name
