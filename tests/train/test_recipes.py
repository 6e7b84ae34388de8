"""The recipe interface: views, outliers, extra heads, stages with frozen parameters, recipe
state in checkpoints, and an in-process crash of a two-stage run resumed bit-identically."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.errors import ConfigError
from oodlab.io import safe_torch_load
from oodlab.losses.oe import outlier_exposure
from oodlab.models import WithHeads
from oodlab.train import checkpoint
from oodlab.train.loop import train
from oodlab.train.recipes import (
    METHODS,
    Batch,
    Recipe,
    Stage,
    TrainContext,
    build_recipe,
    forward_concat,
    register_method,
)
from oodlab.train.run import load_model_from_run, read_log
from oodlab.types import linear_head


@dataclass(frozen=True)
class ToyOptions:
    crash_at_step: int = -1  # raise after this many steps in total (a simulated crash)


# A crash injected without changing the run's config (a resume must use the same config).
CRASH_AT = {"step": -1}


class SimulatedCrashError(RuntimeError):
    pass


class TwoStage(Recipe):
    """Stage ``main``: two views + outliers, CE + OE + a view-consistency term on a projection
    head, with a random weight drawn from torch's global generator; stage ``head``: the
    linear classifier alone on single views, the rest frozen and in eval mode."""

    views = 2
    uses_aux = True
    heads = {"projection": {"out_dim": 8}}

    def __init__(self, options: ToyOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        self.seen = torch.zeros(self.num_classes, dtype=torch.long)
        self.steps = 0
        self.events: list[str] = []

    def stages(self, config: RunConfig) -> list[Stage]:
        head = dataclasses.replace(config.train, epochs=1, optimizer="sgd", lr=0.01)
        return [
            Stage("main", config.train, views=2, uses_aux=True),
            Stage("head", head, views=1, uses_aux=False, batch_size=8),
        ]

    def on_stage_start(self, stage: Stage, model: nn.Module) -> None:
        self.events.append(f"start {stage.name}")
        if stage.name == "head":
            model.requires_grad_(False)
            linear_head(model).requires_grad_(True)

    def train_mode(self, model: nn.Module, stage: Stage) -> None:
        model.train(stage.name == "main")

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        self.seen += torch.bincount(batch.y, minlength=self.num_classes)
        if batch.stage == "head":
            assert len(batch.views) == 1
            assert batch.x_aux is None
            logits = forward_concat(net, [batch.x])["logits"]
            ce = nn.functional.cross_entropy(logits, batch.y)
            return ce, {"ce": ce.detach()}
        out = forward_concat(net, [*batch.views, batch.x_aux], heads=("projection",))
        first, second, aux = out.parts("logits")
        z1, z2, _ = out.parts("projection")
        ce = nn.functional.cross_entropy(torch.cat([first, second]), batch.y.repeat(2))
        consistency = (z1 - z2).pow(2).sum(1).mean()
        weight = 0.1 * torch.rand(())  # global RNG: restored on resume
        loss = ce + 0.5 * outlier_exposure(aux) + weight * consistency
        return loss, {"ce": ce.detach(), "consistency": consistency.detach()}

    def after_step(self, batch: Batch) -> None:
        self.steps += 1
        if self.steps in (self.options.crash_at_step, CRASH_AT["step"]):
            raise SimulatedCrashError(f"crash after step {self.steps}")

    def on_train_end(self, model: nn.Module, context: TrainContext) -> None:
        self.events.append("end")

    def state_dict(self) -> dict:
        return {"seen": self.seen.clone(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.seen, self.steps = state["seen"].clone(), int(state["steps"])


if "toy_two_stage" not in METHODS:
    register_method("toy_two_stage", config_type=ToyOptions, paper="test recipe")(TwoStage)

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 2, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "toy_two_stage"},
}


def config(*overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(BASE, overrides))


@pytest.fixture
def recipes(monkeypatch):
    """The recipe objects the loop builds, for inspection."""
    built: list[TwoStage] = []
    entry = METHODS.get("toy_two_stage")

    def factory(options, counts):
        built.append(TwoStage(options, counts))
        return built[-1]

    monkeypatch.setitem(
        METHODS._entries, "toy_two_stage", dataclasses.replace(entry, factory=factory)
    )
    return built


def test_stages_freeze_heads_and_recipe_state(tmp_path, recipes):
    run = tmp_path / "run"
    train(config(), run)
    recipe = recipes[-1]
    assert recipe.events == ["start main", "start head", "end"]
    rows = [r for r in read_log(run) if r["scope"] == "epoch"]
    assert [(r["stage"], r["epoch"]) for r in rows] == [("main", 0), ("main", 1), ("head", 0)]
    assert "consistency" in rows[0]
    assert "consistency" not in rows[2]
    # 145 training images: 9 steps of 16 twice, then 18 steps of 8 (the stage's batch size).
    assert rows[-1]["step"] == 18
    assert recipe.steps == 36
    assert int(recipe.seen.sum()) == 2 * 9 * 16 + 18 * 8
    # Stage "head" changed the linear classifier only (frozen, eval-mode BatchNorm elsewhere).
    after_main = safe_torch_load(run / "checkpoint.prev.pt")["model"]
    final = safe_torch_load(run / "model.pt")
    changed = sorted(k for k in final if not torch.equal(final[k], after_main[k]))
    assert changed == ["backbone.linear.bias", "backbone.linear.weight"]
    assert torch.equal(safe_torch_load(run / "checkpoint.pt")["recipe"]["seen"], recipe.seen)
    # The run's model comes back with its projection head.
    model = load_model_from_run(run)
    assert isinstance(model, WithHeads)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        outputs = model.extra_outputs(model.features(x))
    assert outputs["projection"].shape == (3, 8)
    assert torch.allclose(outputs["projection"].norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("crash_at", [12, 24])  # inside stage "main", inside stage "head"
def test_crash_and_resume_of_a_two_stage_run_is_bit_identical(tmp_path, crash_at, monkeypatch):
    train(config(), tmp_path / "reference")
    run = tmp_path / "crashed"
    monkeypatch.setitem(CRASH_AT, "step", crash_at)
    with pytest.raises(SimulatedCrashError):
        train(config(), run)
    assert not (run / "model.pt").exists()
    monkeypatch.setitem(CRASH_AT, "step", -1)
    train(config(), run, resume=True)
    a = safe_torch_load(tmp_path / "reference" / "model.pt")
    b = safe_torch_load(run / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ref, res = (checkpoint.load_latest(p) for p in (tmp_path / "reference", run))
    assert torch.equal(ref["recipe"]["seen"], res["recipe"]["seen"])
    keys = [(r["stage"], r["epoch"]) for r in read_log(run) if r["scope"] == "epoch"]
    assert keys == [("main", 0), ("main", 1), ("head", 0)]


def test_options_are_validated_against_the_recipe_dataclass():
    recipe = build_recipe("toy_two_stage", {"crash_at_step": 3}, [4, 2])
    assert recipe.options == ToyOptions(3)
    assert recipe.prior.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_resuming_with_another_config_is_refused_in_one_line(tmp_path):
    run = tmp_path / "run"
    CRASH_AT["step"] = 3
    try:
        with pytest.raises(SimulatedCrashError):
            train(config(), run)
    finally:
        CRASH_AT["step"] = -1
    with pytest.raises(ConfigError, match=r"another config \(train.lr: ") as err:
        train(config("train.lr=0.5"), run, resume=True)
    assert "\n" not in str(err.value)
    # the epochs, device and dataset folder may change: a resume may extend or move a run
    train(config("train.epochs=3", "data.data_root=/elsewhere"), run, resume=True)
    assert (run / "model.pt").is_file()
