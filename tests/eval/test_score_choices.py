"""Choices a score makes from the model it evaluates, stated in the results: the ImOOD
``ada_*`` prior correction on models trained with logit adjustment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from torch.utils.data import TensorDataset

from oodlab.config import MethodConfig, ModelConfig
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig
from oodlab.train.run import build_model

COUNTS = [50, 30, 15, 5]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (MethodConfig("ce"), 0.0),
        (MethodConfig("ce", {"tau": 1.0}), 1.0),
        (MethodConfig("oe", {"tau": 0.5}), 0.5),
        (MethodConfig("imood"), 1.0),
        (MethodConfig("patt", {"views": "batch"}), 1.0),
        (MethodConfig("patt", {"views": "batch", "tla_weight": 0.0}), 0.0),
        (MethodConfig("pascl"), 0.0),  # the OOD branch is stage 1: plain CE
    ],
)
def test_a_run_model_knows_its_logit_adjustment(method, expected):
    model = build_model(ModelConfig("small_cnn", {"width": 0.25}), method, 4, 1)
    assert model.trained_logit_adjustment == expected


def _evaluate(toy, tmp_path, scores):
    ood = {"far": TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))}
    return evaluate(
        toy.model, TensorDataset(toy.x_id, toy.y_id), ood, scores,
        train=TensorDataset(toy.x_train, toy.y_train), class_counts=COUNTS,
        extract_config=ExtractConfig(
            batch_size=32, device="cpu", cache_dir=tmp_path / "cache", quiet=True
        ),
        out_dir=tmp_path / "eval", plots=False,
    )  # fmt: skip


def test_ada_energy_on_a_logit_adjusted_model_uses_the_residual_tau_and_says_so(toy, tmp_path):
    toy.model.trained_logit_adjustment = 1.0
    result = _evaluate(toy, tmp_path, ["energy", "ada_energy"])
    auto = result.scores["ada_energy"]
    assert auto.params["trained_tau"] == 1.0
    assert auto.params["tau_la"] is None
    assert "trained with logit adjustment tau = 1" in auto.note
    # τ_LA = 0: no correction, ada_energy is the energy.
    assert auto.per_set["far"] == result.scores["energy"].per_set["far"]
    report = (tmp_path / "eval" / "results.md").read_text()
    assert "## Score notes" in report
    assert "ada_energy: tau_la = 0" in report


def test_forcing_tau_applies_the_full_correction(toy, tmp_path):
    toy.model.trained_logit_adjustment = 1.0
    result = _evaluate(toy, tmp_path, [("ada_energy", {"tau_la": 1.0})])
    assert "forced" in result.scores["ada_energy"].note
    with torch.no_grad():
        f_id, f_ood = toy.model(toy.x_id).double().numpy(), toy.model(toy.x_ood).double().numpy()
    prior = np.asarray(COUNTS) / sum(COUNTS)

    def closed(f):  # −(LSE(f) + log((1/C) Σ p / π))
        return -(logsumexp(f, axis=1) + np.log((softmax(f, axis=1) / prior).mean(1)))

    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(f_id)), np.ones(len(f_ood))]
    expected = roc_auc_score(labels, np.r_[closed(f_id), closed(f_ood)])
    assert result.scores["ada_energy"].per_set["far"]["auroc"] == pytest.approx(expected)


def test_a_model_without_the_attribute_gets_the_official_tau(toy, tmp_path):
    result = _evaluate(toy, tmp_path, ["ada_energy"])
    assert result.scores["ada_energy"].params["trained_tau"] == 0.0
    assert "without logit adjustment" in result.scores["ada_energy"].note


def test_odin_is_tuned_like_every_other_score_one_pass_per_candidate(toy, tmp_path):
    """With ``tune``, ODIN searches OpenOOD's T × ε grid by validation AUROC; each trial's
    AUROC is that of ODIN run directly on the validation inputs."""
    from sklearn.metrics import roc_auc_score

    from oodlab.eval.tuning import TuneConfig, split_id_test
    from oodlab.scores.odin import ODIN, odin

    ood = {"far": TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))}
    ood_val = TensorDataset(toy.x_ood[:30] * 0.5, torch.full((30,), -1))
    result = evaluate(
        toy.model, TensorDataset(toy.x_id, toy.y_id), ood, ["odin"],
        extract_config=ExtractConfig(
            batch_size=32, device="cpu", cache_dir=tmp_path / "cache", quiet=True
        ),
        tune=TuneConfig(val_fraction=0.25, seed=1, ood_val=ood_val),
    )  # fmt: skip
    tuning = result.scores["odin"].tuning
    assert len(tuning["trials"]) == len(ODIN.search_space["temperature"]) * 2
    _, val_index = split_id_test(len(toy.x_id), 0.25, 1)
    x_val = toy.x_id[val_index]
    for trial in tuning["trials"][:3]:
        t, e = trial["params"]["temperature"], trial["params"]["epsilon"]
        s_id, s_ood = odin(toy.model, x_val, t, e), odin(toy.model, toy.x_ood[:30] * 0.5, t, e)
        labels = np.r_[np.zeros(len(s_id)), np.ones(len(s_ood))]
        expected = roc_auc_score(labels, np.r_[s_id.numpy(), s_ood.numpy()])
        assert trial["val_auroc"] == pytest.approx(expected)
    best = max(t["val_auroc"] for t in tuning["trials"])
    first_best = next(t for t in tuning["trials"] if t["val_auroc"] == best)
    assert tuning["selected"] == first_best["params"]
    assert result.scores["odin"].params["temperature"] == first_best["params"]["temperature"]


def test_omitted_scores_are_recorded_in_the_results(toy, tmp_path):
    from oodlab.eval.cli import zoo_omitted

    result = evaluate(
        toy.model, TensorDataset(toy.x_id, toy.y_id),
        {"far": TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))}, ["msp", "odin"],
        extract_config=ExtractConfig(
            batch_size=32, device="cpu", cache_dir=tmp_path / "cache", quiet=True
        ),
        omitted=zoo_omitted(), out_dir=tmp_path / "eval2", plots=False,
    )  # fmt: skip
    # odin ran, so only the other two are listed as left out.
    assert set(result.omitted) == {"iodin", "mahalanobis_ensemble"}
    assert set(result.to_dict()["omitted"]) == {"iodin", "mahalanobis_ensemble"}
    report = (tmp_path / "eval2" / "results.md").read_text()
    assert "## Left out (not run)" in report
    assert "- iodin: needs input gradients" in report
