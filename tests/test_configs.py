"""Every shipped config file loads, validates, and names a method whose options are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from oodlab.config import RunConfig, load_config
from oodlab.train.recipes import build_recipe

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_there_are_configs_for_every_benchmark_family():
    families = {path.parent.name for path in CONFIGS}
    assert {"cifar10_lt", "cifar100_lt", "imagenet_lt", "fmnist_lt"} <= families


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_validates(path):
    config = load_config(RunConfig, path)
    assert path.read_text().startswith("#"), "each config starts with a comment saying what it is"
    recipe = build_recipe(config.method.name, config.method.options, [100, 10])
    assert recipe.stages(config)[0].train.epochs == config.train.epochs
