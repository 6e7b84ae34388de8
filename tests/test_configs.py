"""Every shipped config file loads, validates, and names a method whose options are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from oodlab.config import RunConfig, from_dict, load_config
from oodlab.train.recipes import METHODS, build_recipe

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_there_are_configs_for_every_benchmark_family():
    families = {path.parent.name for path in CONFIGS}
    assert {"cifar10_lt", "cifar100_lt", "imagenet_lt", "fmnist_lt"} <= families


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_validates(path):
    config = load_config(RunConfig, path)
    assert path.read_text().startswith("#"), "each config starts with a comment saying what it is"
    entry = METHODS.get(config.method.name)  # an unknown method fails here
    options = from_dict(entry.config_type, config.method.options, where=str(path))
    assert options is not None
    if path.parent.name in ("fmnist_lt", "cifar10_lt", "cifar100_lt"):
        counts = [500 // (c + 1) for c in range(100 if "100" in path.parent.name else 10)]
        recipe = build_recipe(config.method.name, config.method.options, counts)
        assert recipe.stages(config)[0].train.epochs == config.train.epochs
