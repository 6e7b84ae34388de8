"""The command line: listing, and one-line errors (no traceback) on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oodlab.cli import main


def test_list_scores_prints_every_registered_score(capsys):
    from oodlab.scores import SCORES

    assert main(["list", "scores"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == SCORES.names()
    assert any("arXiv:1610.02136" in line for line in out)  # MSP's paper


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "/no/such/run"], "does not exist"),
        (["eval"], "give a run folder"),
        (["eval", "--checkpoint", "/no/such.pt", "--model", "x"], "--benchmark"),
    ],
)
def test_eval_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert message in err
    assert "\n" not in err


def test_unknown_score_names_the_nearest_match(tmp_path, capsys):
    from oodlab.eval.cli import parse_score_list
    from oodlab.scores import SCORES

    names = parse_score_list("msp, enrgy")
    with pytest.raises(Exception, match="Did you mean 'energy'") as info:
        SCORES.get(names[1])
    assert "\n" not in str(info.value)


def test_console_script_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "oodlab.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "higher = more OOD" in result.stdout
