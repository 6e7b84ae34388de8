from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import TensorDataset

from oodlab.errors import ConfigError, DataError
from oodlab.eval.evaluate import TuneConfig, evaluate, group_means
from oodlab.eval.extract import ExtractConfig
from oodlab.scores.energy import energy


def _datasets(toy):
    n = len(toy.x_ood) // 3
    ood = {
        "far_a": TensorDataset(toy.x_ood[:n], torch.full((n,), -1)),
        "far_b": TensorDataset(toy.x_ood[n : 2 * n], torch.full((n,), -1)),
        # A near set: ID-like points shifted half-way towards the OOD region.
        "near": TensorDataset(
            0.5 * toy.x_id[: len(toy.x_ood)] + 0.5 * toy.x_ood, torch.full((len(toy.x_ood),), -1)
        ),
    }
    return TensorDataset(toy.x_id, toy.y_id), ood, TensorDataset(toy.x_train, toy.y_train)


def _config(tmp_path):
    return ExtractConfig(batch_size=32, device="cpu", cache_dir=tmp_path / "cache", quiet=True)


def test_one_forward_pass_per_dataset_and_metrics_match_sklearn(toy, tmp_path):
    id_test, ood, train = _datasets(toy)
    result = evaluate(
        toy.model,
        id_test,
        ood,
        ["msp", "energy", "max_logit"],
        train=train,
        near=["near"],
        far=["far_a", "far_b"],
        extract_config=_config(tmp_path),
    )
    # The ID test set is extracted once, not once per OOD set; train is not needed here.
    assert sorted(result.meta["network_passes"]) == sorted(["id_test", "far_a", "far_b", "near"])
    with torch.no_grad():
        id_energy = energy(toy.model(toy.x_id)).numpy()
        for name, ds in ood.items():
            ood_energy = energy(toy.model(ds.tensors[0])).numpy()
            labels = np.r_[np.zeros(len(id_energy)), np.ones(len(ood_energy))]
            expected = roc_auc_score(labels, np.r_[id_energy, ood_energy])
            assert result.scores["energy"].per_set[name]["auroc"] == pytest.approx(expected)
    means = result.scores["msp"].means
    per_set = result.scores["msp"].per_set
    assert means["far"]["auroc"] == pytest.approx(
        (per_set["far_a"]["auroc"] + per_set["far_b"]["auroc"]) / 2
    )
    assert means["near"]["fpr95"] == pytest.approx(per_set["near"]["fpr95"])
    assert means["all"]["auroc"] == pytest.approx(np.mean([v["auroc"] for v in per_set.values()]))
    expected_acc = (toy.model(toy.x_id).argmax(1) == toy.y_id).float().mean().item()
    assert result.id_accuracy == pytest.approx(expected_acc)
    # A second evaluation is served from the cache entirely.
    again = evaluate(toy.model, id_test, ood, ["msp"], extract_config=_config(tmp_path))
    assert again.meta["network_passes"] == []


def test_reports_are_written_and_agree(toy, tmp_path):
    id_test, ood, _ = _datasets(toy)
    out = tmp_path / "eval"
    result = evaluate(
        toy.model,
        id_test,
        ood,
        ["msp", "energy"],
        near=["near"],
        far=["far_a", "far_b"],
        class_counts=[50, 30, 20, 10],
        extract_config=_config(tmp_path),
        out_dir=out,
    )
    for name in [
        "results.json",
        "results.csv",
        "results.md",
        "scores.npz",
        "figures/msp/hist.png",
        "figures/energy/roc.png",
        "figures/energy/pr.png",
        "figures/overview.png",
        "figures/flagged_per_class.png",
        "figures/index.json",
    ]:
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert (
        data["scores"]["msp"]["per_set"]["near"]["auroc"]
        == result.scores["msp"].per_set["near"]["auroc"]
    )
    md = (out / "results.md").read_text()
    assert "FPR95 (ID flagged @95% OOD)" in md
    assert "FPR95 (OOD kept @95% ID)" in md
    row = next(line for line in md.splitlines() if line.startswith("| energy | near |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(
        100 * data["scores"]["energy"]["per_set"]["near"]["auroc"], abs=0.006
    )
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("score,set,auroc")
    assert sum(1 for line in csv_lines if line.startswith("msp,")) == 3 + 3  # sets + group means
    assert set(data["shot_accuracy"]) == {"many_acc", "medium_acc", "few_acc"}
    assert re.search(r"ID accuracy: \d+\.\d\d%", md)


def test_tuning_picks_the_best_validation_auroc(toy, tmp_path):
    id_test, ood, _ = _datasets(toy)
    ood_val = TensorDataset(toy.x_ood.flip(0)[:20], torch.full((20,), -1))
    tune = TuneConfig(val_fraction=0.25, seed=3, ood_val=ood_val)
    result = evaluate(
        toy.model, id_test, ood, ["energy"], tune=tune, extract_config=_config(tmp_path)
    )
    tuning = result.scores["energy"].tuning
    # Recompute every candidate's validation AUROC independently.
    order = torch.randperm(len(toy.x_id), generator=torch.Generator().manual_seed(3))
    val_rows = order[: len(toy.x_id) // 4].sort().values
    with torch.no_grad():
        id_logits = toy.model(toy.x_id[val_rows])
        ood_logits = toy.model(ood_val.tensors[0])
    best, best_auroc = None, -1.0
    for trial in tuning["trials"]:
        t = trial["params"]["temperature"]
        scores = np.r_[energy(id_logits, t).numpy(), energy(ood_logits, t).numpy()]
        labels = np.r_[np.zeros(len(id_logits)), np.ones(len(ood_logits))]
        auroc = roc_auc_score(labels, scores)
        assert trial["val_auroc"] == pytest.approx(auroc)
        if auroc > best_auroc:
            best, best_auroc = t, auroc
    assert tuning["selected"] == {"temperature": best}
    assert result.scores["energy"].params["temperature"] == best
    # The validation rows were removed from the ID test set.
    assert result.meta["sizes"]["id_test"] == len(toy.x_id) - len(val_rows)
    assert "highest AUROC" in result.meta["tuning_rule"]
    assert "OOD validation set (tune.ood_val, 20 images)" in result.meta["tuning_rule"]
    # Without tune.ood_val the auxiliary outliers serve, and the rule says so.
    aux_tune = TuneConfig(val_fraction=0.25, seed=3)
    result = evaluate(toy.model, id_test, ood, ["energy"], aux=ood_val, tune=aux_tune,
                      extract_config=_config(tmp_path))  # fmt: skip
    assert result.scores["energy"].tuning["selected"] == tuning["selected"]
    assert "(the auxiliary outliers, 20 images)" in result.meta["tuning_rule"]
    with pytest.raises(ConfigError, match="needs an OOD validation set"):
        evaluate(toy.model, id_test, ood, ["energy"], tune=TuneConfig(),
                 extract_config=_config(tmp_path))  # fmt: skip


def test_unavailable_scores_are_skipped_or_raise(toy, tmp_path):
    id_test, ood, _ = _datasets(toy)
    with pytest.raises(DataError, match="train"):
        evaluate(toy.model, id_test, ood, ["knn"], extract_config=_config(tmp_path))
    with pytest.raises(ConfigError, match="near/far"):
        evaluate(toy.model, id_test, ood, ["msp"], near=["nope"], extract_config=_config(tmp_path))


def test_group_means_by_hand():
    per_set = {
        "a": {"auroc": 0.9, "fpr95": 0.2},
        "b": {"auroc": 0.7, "fpr95": 0.4},
        "c": {"auroc": 0.5, "fpr95": 1.0},
    }
    means = group_means(per_set, near=["a"], far=["b", "c"])
    assert means["near"] == {"auroc": 0.9, "fpr95": 0.2}
    assert means["far"]["auroc"] == pytest.approx(0.6)
    assert means["all"]["fpr95"] == pytest.approx(1.6 / 3)


def test_per_class_flagged_fractions_average_to_the_pooled_fpr95(toy, tmp_path):
    id_test, ood, _ = _datasets(toy)
    result = evaluate(toy.model, id_test, ood, ["energy"], extract_config=_config(tmp_path))
    flagged = result.per_class_flagged["energy"]
    scores = result.raw["energy"]
    pooled = np.concatenate([scores[k] for k in ood])
    from oodlab.eval.metrics import fpr95

    # Equal class sizes in the toy ID set: the class mean is the pooled ID fraction.
    assert flagged.mean() == pytest.approx(fpr95(scores["id"], pooled))


def test_fake_ood_images_count_as_id_for_their_set(toy, tmp_path):
    id_test, ood, _ = _datasets(toy)
    fake = {"far_a": TensorDataset(toy.x_train[:7], toy.y_train[:7])}
    result = evaluate(
        toy.model, id_test, ood, ["energy"], fake_ood=fake, extract_config=_config(tmp_path)
    )
    with torch.no_grad():
        id_side = energy(toy.model(torch.cat([toy.x_id, toy.x_train[:7]]))).numpy()
        ood_side = energy(toy.model(ood["far_a"].tensors[0])).numpy()
    labels = np.r_[np.zeros(len(id_side)), np.ones(len(ood_side))]
    expected = roc_auc_score(labels, np.r_[id_side, ood_side])
    assert result.scores["energy"].per_set["far_a"]["auroc"] == pytest.approx(expected)
    # The other sets are paired with the ID test set alone.
    plain = evaluate(toy.model, id_test, ood, ["energy"], extract_config=_config(tmp_path))
    assert result.scores["energy"].per_set["far_b"] == plain.scores["energy"].per_set["far_b"]
    with pytest.raises(ConfigError, match="fake_ood"):
        evaluate(
            toy.model,
            id_test,
            ood,
            ["energy"],
            fake_ood={"nope": fake["far_a"]},
            extract_config=_config(tmp_path),
        )


def test_patt_calibration_classifies_with_its_calibrated_logits(toy, tmp_path):
    """The accuracy reported for ``patt_energy`` is that of argmax W(h * a) + b, with ``a``
    re-derived here in numpy from the class-balanced and outlier feature statistics."""
    id_test, ood, train = _datasets(toy)
    aux = TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))
    counts = torch.bincount(toy.y_train).tolist()
    result = evaluate(
        toy.model, id_test, ood, ["patt_energy", "msp"], train=train, aux=aux,
        class_counts=counts, extract_config=_config(tmp_path),
    )  # fmt: skip
    w = toy.model.classifier.weight.detach().double().numpy()
    b = toy.model.classifier.bias.detach().double().numpy()
    h_tr, y_tr = toy.x_train.flatten(1).double().numpy(), toy.y_train.numpy()
    prior = np.bincount(y_tr) / len(y_tr)
    a_id = np.mean([(h_tr[y_tr == c] * w[c] / prior[c]).mean(0) for c in range(len(prior))], 0)
    h_aux = toy.x_ood.flatten(1).double().numpy()
    virtual = (h_aux @ w.T + b).argmax(1)
    a_ood = (h_aux * w[virtual] / prior[virtual][:, None]).mean(0)
    diff = a_id - a_ood
    a = 2 * (diff - diff.min()) / (diff.max() - diff.min())
    h_id = toy.x_id.flatten(1).double().numpy()
    expected = ((h_id * a) @ w.T + b).argmax(1) == toy.y_id.numpy()
    got = result.scores["patt_energy"].accuracy
    assert got["id_accuracy"] == pytest.approx(expected.mean())
    assert result.scores["msp"].accuracy is None  # MSP classifies with the raw logits
    plain = ((h_id @ w.T + b).argmax(1) == toy.y_id.numpy()).mean()
    assert result.id_accuracy == pytest.approx(plain)
