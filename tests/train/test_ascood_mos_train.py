"""ASCOOD and MOS end to end on generated data: train a few steps, then evaluate with the
method's default score; plus the recipes' hooks (α schedule, z-score head, group prediction)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import oodlab.train.methods.ascood
import oodlab.train.methods.mos  # noqa: F401  (registers the recipes)
from oodlab.config import RunConfig, TrainConfig, apply_overrides, from_dict, load_config
from oodlab.data import build_benchmark
from oodlab.errors import ConfigError
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig
from oodlab.train.loop import train
from oodlab.train.recipes import Stage, build_recipe
from oodlab.train.run import default_scores_of_run, load_model_from_run, read_log

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.5}},
    "train": {"epochs": 4, "lr": 0.01, "quiet": True, "device": "cpu"},
}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def config(method: dict, *overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides({**BASE, "method": method}, overrides))


def evaluate_run(run: Path, cfg: RunConfig) -> dict:
    """The run evaluated with its method's default score, as `oodlab eval RUN` picks it."""
    model = load_model_from_run(run)
    benchmark = build_benchmark("synthetic")
    scores = default_scores_of_run(cfg)[:1]
    extract = ExtractConfig(batch_size=64, device="cpu", cache_dir=None, quiet=True)
    result = evaluate(
        model,
        benchmark.test,
        benchmark.ood,
        scores,
        near=benchmark.near,
        far=benchmark.far,
        class_counts=benchmark.class_counts,
        extract_config=extract,
    )
    return result.to_dict()


def test_ascood_trains_logs_the_alpha_schedule_and_evaluates_with_iodin(tmp_path):
    method = {"name": "ascood", "options": {"alpha_max": 4.0, "alpha_min": 1.0, "sigma": 0.5}}
    run = tmp_path / "run"
    train(config(method, "train.epochs=3"), run)
    rows = [r for r in read_log(run) if r["scope"] == "epoch"]
    # α(e) = 3·(1 − e/3) + 1 for e = 1..3, by hand.
    assert [round(r["alpha"], 4) for r in rows] == [3.0, 2.0, 1.0]
    assert rows[-1]["ce"] < rows[0]["ce"]
    model = load_model_from_run(run)
    assert float(model.pre_head.sigma) == 0.5  # σ restored with the weights
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        h = model.features(x)
        z = model.pre_head(h)
        logits = model(x)
    # Per sample: mean 0 and (unbiased) std σ, up to the 1e-6 guard; the head is W z + b.
    torch.testing.assert_close(z.mean(1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(1), torch.full((5,), 0.5), atol=1e-4, rtol=0)
    fc = model.linear_head()
    torch.testing.assert_close(logits, z @ fc.weight.T + fc.bias)
    assert default_scores_of_run(config(method))[0] == "iodin"
    result = evaluate_run(run, config(method))
    assert 0.0 <= result["scores"]["iodin"]["means"]["all"]["auroc"] <= 1.0


def test_ascood_on_epoch_start_sets_alpha_from_the_one_based_epoch():
    recipe = build_recipe("ascood", {}, [3, 2])
    stage = Stage("main", TrainConfig(epochs=10))
    got = []
    for epoch in (0, 4, 9):  # the loop's 0-based epochs
        recipe.on_epoch_start(epoch, stage)
        got.append(recipe.alpha)
    assert got == pytest.approx([273.0, 165.0, 30.0])
    with pytest.raises(ConfigError, match="ood_type"):
        build_recipe("ascood", {"ood_type": "mixup"}, [3, 2])


@pytest.mark.parametrize("ood_type", ["shuffle", "gaussian"])
def test_ascood_other_outlier_types_train(tmp_path, ood_type):
    method = {"name": "ascood", "options": {"ood_type": ood_type, "p_inv": 0.2}}
    result = train(config(method, "train.epochs=1"), tmp_path / "run")
    assert result.epochs == 1
    assert all(r["unc"] >= 0 for r in read_log(tmp_path / "run") if r["scope"] == "epoch")


def test_ascood_outliers_are_made_in_normalised_space():
    from oodlab.train.recipes import Batch
    from oodlab.train.run import build_model

    method = {
        "name": "ascood",
        "options": {"ood_type": "gaussian", "alpha_max": 2.0, "alpha_min": 2.0},
    }
    cfg = config(method, "model.mean=[0.5]", "model.std=[0.25]")
    recipe = build_recipe("ascood", cfg.method.options, [3, 3])
    model = build_model(cfg.model, cfg.method, 2, 1, recipe)
    seen = []

    class Record(nn.Module):
        def forward(self, x, heads=(), fn=None):
            seen.append(x)
            return {"logits": torch.zeros(len(x), 2, requires_grad=True), "features": x.flatten(1)}

    x = torch.rand(3, 1, 4, 4)
    torch.manual_seed(5)
    recipe.loss(Record(), Batch([x], torch.tensor([0, 1, 0]), model=model))
    torch.manual_seed(5)
    noise = torch.randn(3, 1, 4, 4)
    # α·N(0, I) in normalised space is 0.5 + 0.25·α·N in the [0, 1] images the model takes.
    torch.testing.assert_close(seen[0][3:], 0.5 + 0.25 * 2.0 * noise)
    torch.testing.assert_close(seen[0][:3], x)


def test_mos_trains_predicts_by_group_and_evaluates_with_the_mos_score(tmp_path):
    method = {"name": "mos", "options": {"groups": [1, 0, 1, 0], "freeze_backbone": False}}
    run = tmp_path / "run"
    result = train(config(method, "train.epochs=6"), run)
    rows = [r for r in read_log(run) if r["scope"] == "epoch"]
    assert rows[-1]["group_ce"] < rows[0]["group_ce"]
    assert result.final_accuracy > 0.5  # 4 classes: chance is 0.25
    model = load_model_from_run(run)
    assert model.group_sizes == [3, 3]
    assert model.group_class_ids.tolist() == [1, 3, 0, 2]
    result_json = evaluate_run(run, config(method))
    assert 0.0 <= result_json["scores"]["mos"]["means"]["all"]["auroc"] <= 1.0
    # Evaluation classifies with the group rule too (not argmax over the group logits).
    assert result_json["id_accuracy"] == pytest.approx(result.final_accuracy)
    # Per ID class (4), not per group logit (6): the bench's head-vs-tail chart needs it.
    assert len(result_json["per_class_flagged"]["mos"]) == 4


def test_mos_prediction_maps_back_to_class_ids():
    recipe = build_recipe("mos", {"groups": [1, 0, 1, 0]}, [5, 5, 5, 5])
    # Groups: (1, 3) then (0, 2); logits [others, 1, 3 | others, 0, 2].
    logits = torch.tensor([[0.0, 0.0, 5.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 6.0]])

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits

    assert recipe.predict(Fixed(), torch.zeros(2)).tolist() == [3, 2]
    with pytest.raises(ConfigError, match="covers 3 classes but the data has 4"):
        build_recipe("mos", {"groups": [0, 1, 1]}, [5, 5, 5, 5])


def test_mos_frozen_backbone_trains_only_the_group_head(tmp_path):
    method = {"name": "mos", "options": {"groups": [0, 0, 1, 1], "mixup_alpha": 0.1}}
    run = tmp_path / "run"
    cfg = config(method, "train.epochs=1")
    torch.manual_seed(0)
    train(cfg, run)
    model = load_model_from_run(run)
    from oodlab.train.run import build_model
    from oodlab.train.seeding import seed_everything

    seed_everything(cfg.train.seed)
    fresh = build_model(cfg.model, cfg.method, 4, 1)
    for (name, a), b in zip(
        model.backbone.state_dict().items(), fresh.backbone.state_dict().values()
    ):
        torch.testing.assert_close(a, b, msg=name)  # frozen, BatchNorm statistics included
    assert model.classifier.weight.abs().sum() > 0  # zero-initialised head has moved


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.glob("*/ascood.yaml")) + sorted(CONFIGS.glob("*/mos.yaml"))
)
def test_published_configs_load_and_validate(path):
    cfg = load_config(RunConfig, path)
    assert cfg.method.name in ("ascood", "mos")
    if cfg.data.benchmark.startswith("fmnist"):
        build_recipe(cfg.method.name, cfg.method.options, [1] * 10)
    elif cfg.method.name == "ascood":
        build_recipe("ascood", cfg.method.options, [1, 1])
