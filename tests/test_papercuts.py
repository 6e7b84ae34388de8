"""Paper-cuts found by using oodlab as a new user would, one test each."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from oodlab.cli import build_parser, main
from oodlab.config import RunConfig, find_config, load_config, parse_override


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    from oodlab.io import atomic_write_text

    before = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("text", "value"), [("1e-3", 1e-3), ("-2.5E-4", -2.5e-4), ("3e2", 300.0), ("5", 5)]
)
def test_exponent_numbers_are_floats_in_overrides_and_files(text, value, tmp_path):
    assert parse_override(f"train.lr={text}")[1] == value
    assert type(parse_override(f"train.lr={text}")[1]) is type(value)
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  lr: {text if value > 0 else '1e-3'}\n")
    lr = load_config(RunConfig, config).train.lr
    assert lr == (value if value > 0 else 1e-3)


def test_shipped_configs_are_found_outside_the_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert not Path("configs").exists()
    found = find_config("configs/fmnist_lt/oe.yaml")
    assert found.is_file()
    assert found.parent.name == "fmnist_lt"
    assert find_config("smoke/synthetic_oe.yaml").is_file()
    argv = ["train", "configs/smoke/synthetic_oe.yaml", "--run-dir", str(tmp_path / "r")]
    assert main([*argv, "--set", "train.epochs=1", "--set", "train.device=cpu"]) == 0
    assert (tmp_path / "r" / "model.pt").is_file()
    assert main(["train", "configs/nope.yaml"]) == 2
    assert "shipped configs" in capsys.readouterr().err


def _options(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, parser, action


def test_every_cli_option_has_help_and_shows_its_default():
    found = list(_options(build_parser(), "oodlab"))
    assert len(found) > 20
    missing = [f"{path} {a.option_strings or a.dest}" for path, _, a in found if not a.help]
    assert missing == []
    for _path, parser, action in found:
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert f"(default: {action.default})" in " ".join(parser.format_help().split())
