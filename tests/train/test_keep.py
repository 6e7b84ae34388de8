"""``train.keep: best_val_acc`` keeps the epoch of best ID accuracy (ties: the later one) and
the evaluation says which checkpoint it evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oodlab.cli import main
from oodlab.errors import ConfigError
from oodlab.train.keep import BestKeeper, describe

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke" / "synthetic_ce.yaml"


def test_keeper_keeps_the_best_and_ties_go_to_the_later_epoch(tmp_path):
    keeper = BestKeeper(tmp_path, "ID test set")
    model = torch.nn.Linear(2, 1)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6, 0.7, 0.2], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        keeper.offer(model, accuracy, "main", epoch)
    assert keeper.best["epoch"] == 4  # 0.7 twice: the later epoch
    again = BestKeeper(tmp_path, "ID test set")  # a resumed run reads the record
    assert again.best["id_accuracy"] == 0.7
    kept = again.restore(model)
    assert model.weight.flatten().tolist() == [4.0, 4.0]
    assert "epoch 4, 70.00% on the ID test set" in describe(kept)


def test_run_keeps_best_val_acc_and_eval_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", str(CONFIG), "--run-dir", str(run), "--set", "train.epochs=3", "--set",
            "train.device=cpu", "--set", "train.keep=best_val_acc", "--set",
            "train.quiet=true"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    accuracies = [(r["id_accuracy"], r["epoch"] + 1) for r in rows if r.get("scope") == "epoch"]
    best_epoch = max(accuracies)[1]  # highest accuracy, ties to the later epoch
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["kept"]["rule"] == "best_val_acc"
    assert summary["kept"]["epoch"] == best_epoch
    final = torch.load(run / "model.pt", weights_only=True)
    best = torch.load(run / "best_model.pt", weights_only=True)
    assert all(torch.equal(final[k], best[k]) for k in final)
    capsys.readouterr()
    argv = ["eval", str(run), "--scores", "msp", "--quiet", "--device", "cpu", "--cache-dir",
            str(tmp_path / "c")]  # fmt: skip
    assert main(argv) == 0
    assert f"epoch {best_epoch}" in capsys.readouterr().out
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["meta"]["checkpoint"]["epoch"] == best_epoch
    assert "Evaluated: the best ID accuracy checkpoint" in (run / "eval" / "results.md").read_text()


def test_keep_default_is_last_and_bad_values_fail():
    from oodlab.config import TrainConfig, from_dict

    assert TrainConfig().keep == "last"
    with pytest.raises(ConfigError, match="best_val_acc"):
        from_dict(TrainConfig, {"keep": "best"}, where="train")
