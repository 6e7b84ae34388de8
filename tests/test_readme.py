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
    printed = stdout.getvalue().splitlines()
    assert len(printed) == 4
    # Far-away Gaussian noise must be recognised by the feature-space scores.
    assert result.scores["mahalanobis"].per_set["noise"]["auroc"] > 0.8
