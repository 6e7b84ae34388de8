"""End to end: ``npos`` on the generated benchmark then its default score (KNN), and
``npos_features`` (the ``embeddings`` benchmark of generated ``.npy`` / ``.pt`` files, the
``feature_tail`` model, the one loop) then MCM, checked by hand; both resume bit-identically
after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from oodlab.cli import main
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.errors import ConfigError, DataError
from oodlab.io import safe_torch_load, sha256_file
from oodlab.losses.npos import NPOSFeatureLoss
from oodlab.synthesis.feature_data import FeatureTail
from oodlab.train import checkpoint
from oodlab.train.loop import train
from oodlab.train.methods.npos import NPOSRecipe
from oodlab.train.methods.npos_features import NPOSFeaturesRecipe
from oodlab.train.run import default_scores_of_run, load_model_from_run, load_run_config, read_log

SMALL = {
    "start_epoch": 1,
    "queue_size": 24,
    "noise_samples": 16,
    "select": 6,
    "pick": 2,
    "keep": 3,
    "k": 4,
}
BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 3, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "npos", "options": SMALL},
}


def test_npos_trains_synthesises_and_evaluates_with_knn(tmp_path):
    run = tmp_path / "run"
    train(from_dict(RunConfig, BASE), run)
    rows = [r for r in read_log(run) if r["scope"] == "epoch"]
    # Epoch 0: queues fill, no synthesis; from epoch 1: C · P · R = 4 · 2 · 3 outliers a step.
    assert rows[0]["outliers"] == 0
    assert rows[0]["open"] == 0
    assert rows[2]["outliers"] == 24
    assert rows[2]["open"] > 0
    state = checkpoint.load_latest(run)["recipe"]
    assert state["synthesizer"]["counts"].tolist() == [24] * 4
    assert state["synthesizer"]["queue"].shape == (4, 24, 32)  # small_cnn width 0.25: 32-d
    model = load_model_from_run(run)
    assert set(model.extra_heads) == {"projection", "bin_logit"}
    assert default_scores_of_run(load_run_config(run))[0] == "knn"
    assert main(["eval", str(run), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    # The noise set is far from every class square: KNN (k = 50) ranks it above chance.
    assert results["scores"]["knn"]["per_set"]["noise"]["auroc"] > 0.6
    assert "knn" not in results["skipped"]


class SimulatedCrashError(RuntimeError):
    pass


@pytest.mark.slow
def test_a_crash_resumes_bit_identically_with_queues_and_prototypes(tmp_path, monkeypatch):
    two_epochs = apply_overrides(BASE, ["train.epochs=2"])
    full = tmp_path / "full"
    train(from_dict(RunConfig, two_epochs), full)

    def crash(self, batch):
        if batch.step == 12:  # inside epoch 1 (synthesis on), after epoch 0's checkpoint
            raise SimulatedCrashError

    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        patch.setattr(NPOSRecipe, "after_step", crash)
        with pytest.raises(SimulatedCrashError):
            train(from_dict(RunConfig, two_epochs), crashed)
    train(from_dict(RunConfig, two_epochs), crashed, resume=True)
    a, b = checkpoint.load_latest(crashed), checkpoint.load_latest(full)
    for key in ("queue", "counts"):
        assert torch.equal(a["recipe"]["synthesizer"][key], b["recipe"]["synthesizer"][key])
    assert torch.equal(a["recipe"]["prototypes"], b["recipe"]["prototypes"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert a["recipe"]["synthesizer"]["counts"].tolist() == [24] * 4


def _write_features(root: Path, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    classes, dim = 3, 8
    text = rng.normal(size=(classes, dim)).astype(np.float32)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        return (text[y] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32), y

    x, y = split(240)
    xt, yt = split(90)
    files = {
        "train_features": "x.npy",
        "train_labels": "y.npy",
        "class_embeddings": "t.pt",
        "test_features": "xt.npy",
        "test_labels": "yt.npy",
    }
    for key, arr in zip(files, (x, y, text, xt, yt)):
        path = root / files[key]
        if path.suffix == ".pt":
            torch.save(torch.from_numpy(arr), path)
        else:
            np.save(path, arr)
    np.save(root / "ood.npy", (2.0 * rng.normal(size=(90, dim))).astype(np.float32))
    return {k: str(root / v) for k, v in files.items()}


def _feature_config(files: dict[str, str], root: Path) -> dict:
    options = {
        "start_epoch": 1,
        "queue_size": 20,
        "noise_samples": 12,
        "select": 5,
        "pick": 2,
        "keep": 2,
        "k": 4,
    }
    data = {**files, "ood_features": {"noise": str(root / "ood.npy")}}
    return {
        "data": {"benchmark": "embeddings", "batch_size": 32, "options": data},
        "model": {
            "name": "feature_tail",
            "options": {"class_embeddings": files["class_embeddings"]},
        },
        "train": {
            "epochs": 3,
            "optimizer": "sgd",
            "lr": 0.1,
            "weight_decay": 1e-4,
            "schedule": "constant",
            "device": "cpu",
            "seed": 1,
            "quiet": True,
        },
        "method": {"name": "npos_features", "options": options},
    }


def test_feature_pipeline_trains_and_scores_with_mcm_checked_by_hand(tmp_path, capsys):
    files = _write_features(tmp_path)
    out = tmp_path / "out"
    config = tmp_path / "npos_features.yaml"
    config.write_text(yaml.safe_dump(_feature_config(files, tmp_path)))
    assert main(["train", str(config), "--run-dir", str(out)]) == 0  # the one loop
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert f"ID accuracy {100 * results['id_accuracy']:.2f}%" in printed
    assert f"mean MCM AUROC {100 * results['mean']['auroc']:.2f}%" in printed
    assert load_run_config(out).method.name == "npos_features"
    assert [r["open"] > 0 for r in results["train_log"]] == [False, True, True]
    weights = safe_torch_load(out / "model.pt")
    tail = FeatureTail(8, 8)
    tail.load_state_dict(_part(weights, "backbone.tail."))
    assert _part(weights, "extra_heads.bin_logit.")["0.weight"].shape == (32, 8)  # phi: 8-32-1
    text = torch.load(files["class_embeddings"], weights_only=True)
    text = text / text.norm(dim=1, keepdim=True)

    def msp_of_cosines(path: str) -> np.ndarray:
        with torch.no_grad():
            e = tail(torch.from_numpy(np.load(path)))
        cos = (e / e.norm(dim=1, keepdim=True)) @ text.T
        return torch.softmax(cos, dim=1).max(1).values.numpy()  # MCM, higher = more ID

    id_mcm, ood_mcm = (
        msp_of_cosines(files["test_features"]),
        msp_of_cosines(str(tmp_path / "ood.npy")),
    )
    labels = np.r_[np.zeros(len(id_mcm)), np.ones(len(ood_mcm))]
    auroc = roc_auc_score(labels, -np.r_[id_mcm, ood_mcm])
    assert results["ood"]["noise"]["auroc"] == pytest.approx(auroc, abs=1e-6)
    assert results["id_accuracy"] > 0.9
    assert auroc > 0.8


def test_shipped_feature_config_runs_through_oodlab_train(tmp_path, capsys):
    files = _write_features(tmp_path)
    config = Path(__file__).resolve().parents[2] / "configs/imagenet100/npos_clip_features.yaml"
    sets = [f"data.options.{key}={path}" for key, path in files.items()]
    sets += [
        f"model.options.class_embeddings={files['class_embeddings']}",
        f"data.options.ood_features={{noise: {tmp_path / 'ood.npy'}}}",
        "train.epochs=2",
        "train.device=cpu",
        "data.batch_size=32",  # the config's 800 is more than the 240 generated embeddings
    ]
    argv = ["train", str(config), "--run-dir", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["epoch"] for r in results["train_log"]] == [0, 1]
    assert set(results["ood"]) == {"noise"}
    assert results["score"] == "mcm"
    tail = FeatureTail(8, 8, blocks=2)  # the config's model.options.blocks: 2
    tail.load_state_dict(_part(safe_torch_load(tmp_path / "run" / "model.pt"), "backbone.tail."))
    capsys.readouterr()
    before = {n: (tmp_path / "run" / n).read_bytes() for n in ("model.pt", "results.json")}
    assert main([*argv, "--resume"]) == 0  # a finished run: nothing to do, one line
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1
    assert "has already finished its 2 epochs; nothing to do" in printed
    assert {n: (tmp_path / "run" / n).read_bytes() for n in before} == before


def test_feature_pipeline_errors_are_one_line(tmp_path):
    files = _write_features(tmp_path)
    cfg = _feature_config(files, tmp_path)
    cfg["data"]["options"]["train_labels"] = str(tmp_path / "missing.npy")
    with pytest.raises(DataError, match=r"data\.options\.train_labels file .* does not exist"):
        train(from_dict(RunConfig, cfg), tmp_path / "o1")
    np.save(tmp_path / "short.npy", np.zeros(5, dtype=np.int64))
    cfg["data"]["options"]["train_labels"] = str(tmp_path / "short.npy")
    with pytest.raises(DataError, match=r"must be \(240,\) integers"):
        train(from_dict(RunConfig, cfg), tmp_path / "o2")
    np.save(tmp_path / "t3.npy", np.zeros((3, 5), dtype=np.float32))
    cfg["data"]["options"]["train_labels"] = files["train_labels"]
    cfg["data"]["options"]["test_features"] = str(tmp_path / "t3.npy")
    with pytest.raises(DataError, match="dimension 5, expected 8"):
        train(from_dict(RunConfig, cfg), tmp_path / "o3")
    with pytest.raises(ConfigError, match="bin_logit head"):  # phi comes from the recipe's heads
        NPOSFeaturesRecipe(None, [1, 1]).param_groups(torch.nn.Linear(2, 2), None)  # type: ignore[arg-type]


def _part(state: dict, prefix: str) -> dict:
    """The tensors of one sub-module of a saved state dict, under their own names."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _same_run(a: Path, b: Path) -> None:
    """Bit-identical final weights, results, train logs (bar timings) and last checkpoints."""
    wa, wb = safe_torch_load(a / "model.pt"), safe_torch_load(b / "model.pt")
    assert wa.keys() == wb.keys()
    assert {k.split(".")[0] for k in wa} >= {"backbone", "extra_heads"}  # the tail and phi
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((a / "results.json").read_text()) == json.loads(
        (b / "results.json").read_text()
    )
    rows_a, rows_b = read_log(a), read_log(b)
    assert [r.pop("images_per_s") > 0 for r in rows_a + rows_b]
    assert rows_a == rows_b
    ca, cb = checkpoint.load_latest(a), checkpoint.load_latest(b)
    assert ca["epoch"] == cb["epoch"]
    for key in ("queue", "counts"):
        assert torch.equal(ca["recipe"]["synthesizer"][key], cb["recipe"]["synthesizer"][key])
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])
    momentum = [s["momentum_buffer"] for s in ca["optimizer"]["state"].values()]
    other = [s["momentum_buffer"] for s in cb["optimizer"]["state"].values()]
    assert all(torch.equal(m, o) for m, o in zip(momentum, other, strict=True))


def test_feature_pipeline_writes_a_run_folder_with_checkpoints(tmp_path):
    files = _write_features(tmp_path)
    out = tmp_path / "out"
    train(from_dict(RunConfig, _feature_config(files, tmp_path)), out)
    results = json.loads((out / "results.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 1
    recorded = {k: v["sha256"] for k, v in meta["benchmark_info"]["input_files"].items()}
    expected = {k: sha256_file(v) for k, v in files.items()}
    assert recorded == {**expected, "ood_features.noise": sha256_file(tmp_path / "ood.npy")}
    rows = read_log(out)
    assert [(r["scope"], r["epoch"], r["step"]) for r in rows] == [
        ("epoch", 0, 7),
        ("epoch", 1, 14),
        ("epoch", 2, 21),
    ]  # 240 samples, batch 32: 7 steps an epoch
    assert [{k: r[k] for k in ("epoch", "loss", "cls", "open")} for r in rows] == results[
        "train_log"
    ]
    assert all(r["lr"] == 0.1 for r in rows)
    state = checkpoint.load_latest(out)
    assert (state["epoch"], state["step"]) == (3, 21)
    assert state["recipe"]["synthesizer"]["counts"].tolist() == [20] * 3  # every queue full
    assert checkpoint.load_verified(out / "checkpoint.prev.pt")["epoch"] == 2
    final = safe_torch_load(out / "model.pt")
    assert all(torch.equal(final[k], v) for k, v in state["model"].items())


def test_feature_pipeline_resumes_a_crash_bit_identically(tmp_path, monkeypatch):
    files = _write_features(tmp_path)
    config = from_dict(RunConfig, _feature_config(files, tmp_path))
    train(config, tmp_path / "full")
    terms, calls = NPOSFeatureLoss.terms, []

    def crash(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 18:  # step 4 of epoch 2 (synthesis on), after epoch 1's checkpoint
            raise SimulatedCrashError
        return terms(self, *args, **kwargs)

    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        patch.setattr(NPOSFeatureLoss, "terms", crash)
        with pytest.raises(SimulatedCrashError):
            train(config, crashed)
    assert checkpoint.load_latest(crashed)["epoch"] == 2
    assert not (crashed / "results.json").exists()
    assert [r["epoch"] for r in read_log(crashed)] == [0, 1]
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        train(config, crashed)
    train(config, crashed, resume=True)
    _same_run(crashed, tmp_path / "full")


def test_feature_pipeline_extends_a_finished_run_through_the_cli(tmp_path, capsys):
    files = _write_features(tmp_path)
    path = tmp_path / "npos_features.yaml"
    path.write_text(yaml.safe_dump(_feature_config(files, tmp_path)))

    def cli(run: str, *extra: str) -> int:
        return main(["train", str(path), "--run-dir", str(tmp_path / run), *extra])

    assert cli("full") == 0
    assert cli("part", "--set", "train.epochs=1") == 0
    assert json.loads((tmp_path / "part" / "results.json").read_text())["epochs"] == 1
    assert cli("part", "--resume") == 0  # the config's 3 epochs: two more
    _same_run(tmp_path / "part", tmp_path / "full")
    capsys.readouterr()
    # Resume with another config, a shorter run, or a changed input: one line each.
    checks = [
        (
            ("--set", "train.lr=0.2", "--resume"),
            "holds a run of another config (train.lr: 0.1 -> 0.2)",
        ),
        (("--set", "method.options.sigma=0.2", "--resume"), "method.options.sigma: 0.1 -> 0.2"),
        (("--set", "train.epochs=2", "--resume"), "has trained 3 epochs, past train.epochs=2"),
        ((), "already holds a run; pass --resume to continue it"),
    ]
    for extra, message in checks:
        assert cli("part", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err
        assert "\n" not in err
    np.save(files["train_labels"], np.zeros(240, dtype=np.int64))
    assert cli("part", "--set", "train.epochs=4", "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "data.options.train_labels file" in err
    assert "changed since the run" in err
    assert "\n" not in err
    assert json.loads((tmp_path / "part" / "results.json").read_text())["epochs"] == 3


def test_oodlab_eval_scores_a_feature_run_with_the_zoo_and_matches_its_mcm(tmp_path, capsys):
    files = _write_features(tmp_path)
    run = tmp_path / "run"
    config = tmp_path / "npos_features.yaml"
    config.write_text(yaml.safe_dump(_feature_config(files, tmp_path)))
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    own = json.loads((run / "results.json").read_text())
    cache = tmp_path / "cache"
    assert main(["eval", str(run), "--scores", "mcm,msp,knn", "--cache-dir", str(cache)]) == 0
    evaluated = json.loads((run / "eval" / "results.json").read_text())
    # The pipeline's own MCM (cosines to the text embeddings) and its ID accuracy, recomputed
    # by the evaluation engine from the run's embedding files.
    assert evaluated["scores"]["mcm"]["per_set"]["noise"]["auroc"] == pytest.approx(
        own["ood"]["noise"]["auroc"], abs=1e-6
    )
    assert evaluated["id_accuracy"] == pytest.approx(own["id_accuracy"])
    assert evaluated["scores"]["knn"]["per_set"]["noise"]["auroc"] > 0.8
