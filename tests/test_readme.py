"""The README's Python example runs as written and its scores separate the toy OOD set."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    text = README.read_text()
    block = re.search(
        r"<!-- readme-example: start -->\s*```python\n(.*?)```\s*<!-- readme-example: end -->",
        text,
        re.S,
    )
    assert block, "README example markers not found"
    namespace: dict = {}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(block.group(1), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert set(result.scores) == {"msp", "energy", "mahalanobis", "knn"}
    printed = stdout.getvalue().strip()
    assert printed == repr(result)
    assert len(printed.splitlines()) == 2 + 4
    # The trained toy model separates both OOD sets with every score, none below chance.
    for name, score in result.scores.items():
        assert score.means["all"]["auroc"] > 0.9, name
    assert result.scores["mahalanobis"].per_set["noise"]["auroc"] > 0.8
    # The output shown in the README is what the example prints.
    shown = re.search(r"readme-example: end -->\s*prints\s*```\n(.*?)```", text, re.S)
    assert shown, "the printed output block after the example is missing"
    shown_lines, printed_lines = shown.group(1).strip().splitlines(), printed.splitlines()
    assert shown_lines[:2] == printed_lines[:2]
    for a, b in zip(shown_lines[2:], printed_lines[2:], strict=True):  # AUROC within a point
        assert a.split()[0] == b.split()[0]
        assert abs(float(a.split()[1]) - float(b.split()[1])) < 1.0
