"""The per-class flagged figure stays bounded and readable at ImageNet's 1000 classes."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from oodlab.eval.figures import MAX_BARS, save_flagged_per_class


def test_1000_classes_by_19_scores_is_a_bounded_heatmap(tmp_path):
    rng = np.random.default_rng(0)
    flagged = {f"score{i}": rng.random(1000) for i in range(19)}
    shots = ["many"] * 390 + ["medium"] * 470 + ["few"] * 140
    classes = [{"index": c, "name": f"n{c:05d}", "shot": s} for c, s in enumerate(shots)]
    start = time.perf_counter()
    save_flagged_per_class(flagged, tmp_path / "flagged.png", classes)
    seconds = time.perf_counter() - start
    with Image.open(tmp_path / "flagged.png") as image:
        width, height = image.size
    # 16 in at 110 dpi plus the colour bar and labels; the bar chart would be ~300k px wide.
    assert width < 2400
    assert height < 1200
    assert seconds < 60  # generous on a loaded CI core; the bar chart did not finish in 15 min


def test_few_classes_keep_the_bar_chart(tmp_path):
    flagged = {"msp": np.array([0.1, 0.5, 0.9]), "energy": np.array([0.2, 0.4, 0.6])}
    assert MAX_BARS >= 3 * 2
    save_flagged_per_class(flagged, tmp_path / "bars.png")
    with Image.open(tmp_path / "bars.png") as image:
        assert image.size[0] < 1200  # 6 in wide bar chart
