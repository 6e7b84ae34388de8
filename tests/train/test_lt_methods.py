"""End to end for the long-tailed methods: a few steps on generated LT data with outliers,
then `oodlab eval` with the method's own score; PASCL's branches, PATT's state on resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from oodlab.cli import main
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.models.two_branch import TwoBranch
from oodlab.train.loop import train
from oodlab.train.run import default_scores_of_run, load_model_from_run, load_run_config
from oodlab.types import linear_head

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 1, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "oe"},
}


def config(*overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(BASE, overrides))


METHODS = {
    "energy_oe": ((), "energy"),
    "bin_disc": ((), "bin_disc"),
    "pascl": (("method.options.abf_epochs=1",), "msp"),
    "imood": ((), "bin_disc"),
    "imood_energy": (("method.options.detector=energy", "method.options.aux_loss=none"), "energy"),
    "imood_oe": (("method.options.detector=oe",), "msp"),
    "patt": (("method.options.views=batch",), "patt_energy"),
}


@pytest.mark.parametrize("label", sorted(METHODS))
def test_train_then_oodlab_eval_with_the_method_score(tmp_path, label, capsys):
    overrides, score = METHODS[label]
    run = tmp_path / label
    method = "imood" if label.startswith("imood") else label
    train(config(f"method.name={method}", *overrides), run)
    assert default_scores_of_run(load_run_config(run))[0] == score
    assert main(["eval", str(run), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    means = results["scores"][score]["means"]["all"]
    assert 0 <= means["auroc"] <= 1
    assert 0 <= means["fpr95"] <= 1
    assert score not in results["skipped"]


def test_pascl_fine_tunes_only_the_classification_branch(tmp_path):
    plain = train(config("method.name=pascl", "method.options.abf_epochs=0"), tmp_path / "a")
    tuned = train(config("method.name=pascl", "method.options.abf_epochs=2"), tmp_path / "b")
    assert plain.final_accuracy >= 0
    assert tuned.final_accuracy >= 0
    a, b = load_model_from_run(tmp_path / "a"), load_model_from_run(tmp_path / "b")
    assert isinstance(b, TwoBranch)
    # Stage 1 is the same in both runs and ABF leaves the OOD branch alone.
    for key, value in a.ood.state_dict().items():
        torch.testing.assert_close(b.ood.state_dict()[key], value, rtol=0, atol=0)
    # The convolutions are one set of weights; BatchNorm and the classifier are the branch's own.
    shared = dict(b.ood.named_parameters())
    own = {id(p) for p in b.classification_parameters()}
    for name, param in b.cls.named_parameters():
        assert (param is shared[name]) == (id(param) not in own), name
    head = linear_head(b.cls)
    own_modules = {
        name
        for name, module in b.cls.named_modules()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) or module is head
    }
    ood_state = b.ood.state_dict()
    changed = {
        k.rsplit(".", 1)[0]
        for k, v in b.cls.state_dict().items()
        if not torch.equal(v, ood_state[k])
    }
    assert changed
    assert changed <= own_modules
    # Evaluation classifies with the fine-tuned branch.
    assert main(["eval", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    results = json.loads((tmp_path / "b" / "eval" / "results.json").read_text())
    from oodlab.data.benchmarks import build_benchmark

    test = build_benchmark("synthetic", data_root=None, seed=0).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        cls_acc = (b.cls(x).argmax(1) == y).float().mean().item()
    assert results["id_accuracy"] == pytest.approx(cls_acc)


def test_patt_running_means_survive_a_resume(tmp_path: Path):
    patt = ("method.name=patt", "method.options.views=batch", "train.epochs=2")
    full = train(config(*patt), tmp_path / "full")
    # Roll a copy back to its epoch-1 checkpoint, as if killed during epoch 2, and resume.
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for suffix in (".pt", ".json"):
        (part / f"checkpoint.prev{suffix}").replace(part / f"checkpoint{suffix}")
    for name in ("model.pt", "model.json", "train_summary.json"):
        (part / name).unlink()
    state = torch.load(part / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert state["recipe"]["counts"].sum() > 0  # PATT's running class statistics are saved
    resumed = train(config(*patt), part, resume=True)
    assert resumed.final_accuracy == pytest.approx(full.final_accuracy)
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(part / "model.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
