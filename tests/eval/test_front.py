"""One-call evaluation on a benchmark preset, and the views of its result."""

from __future__ import annotations

import pytest
import torch

from oodlab.data import build_benchmark
from oodlab.errors import ConfigError
from oodlab.eval import ExtractConfig, evaluate
from oodlab.eval.evaluate import evaluate as pipeline_evaluate
from oodlab.eval.report import results_markdown
from oodlab.models.small_cnn import SmallCNN

SCORES = ["msp", "knn", "ada_msp"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4, in_channels=1, width=0.25).eval()
    config = ExtractConfig(cache_dir=None, quiet=True, device="cpu")
    result = evaluate(model, benchmark="synthetic", scores=SCORES, extract_config=config)
    return model, config, result


def test_benchmark_name_fills_every_data_argument(setup):
    model, config, result = setup
    bench = build_benchmark("synthetic")
    explicit = pipeline_evaluate(
        model,
        bench.test,
        bench.ood,
        SCORES,
        train=bench.train,
        aux=bench.aux,
        near=bench.near,
        far=bench.far,
        class_counts=bench.class_counts,
        extract_config=config,
    )
    for name in SCORES:
        assert result.scores[name].per_set == explicit.scores[name].per_set
        assert result.scores[name].means == explicit.scores[name].means
    assert result.shot_accuracy == explicit.shot_accuracy
    assert result.shot_accuracy is not None  # class counts came from the benchmark
    assert result.meta["benchmark"] == "synthetic"
    assert result.meta["model_protocol"] == "features/head"


def test_repr_is_short_and_names_every_score(setup):
    _, _, result = setup
    text = repr(result)
    lines = text.splitlines()
    assert len(lines) == 2 + len(SCORES)
    assert lines[0].startswith(f"EvalResult(ID accuracy {100 * result.id_accuracy:.2f}%")
    for name, line in zip(SCORES, lines[2:]):
        auroc = 100 * result.scores[name].means["all"]["auroc"]
        assert line.split()[:2] == [name, f"{auroc:.2f}"]


def test_frame_and_markdown_views(setup):
    pytest.importorskip("pandas")
    _, _, result = setup
    frame = result.to_frame()
    assert frame.loc[("knn", "noise"), "auroc"] == result.scores["knn"].per_set["noise"]["auroc"]
    assert frame.loc[("msp", "all mean"), "fpr95"] == result.scores["msp"].means["all"]["fpr95"]
    assert len(frame) == len(SCORES) * (2 + len(result.scores["msp"].means))
    assert result.to_markdown() == results_markdown(result)


def test_zoo_and_errors(setup):
    model, config, _ = setup
    zoo = evaluate(model, benchmark="synthetic", scores="zoo", extract_config=config)
    assert {"msp", "knn", "vim"} <= set(zoo.scores)
    assert "bin_disc" in zoo.skipped  # the model has no binary-discriminator head
    with pytest.raises(ConfigError, match="benchmark="):
        evaluate(model)
    with pytest.raises(ConfigError, match="zoo"):
        evaluate(model, benchmark="synthetic", scores="all")
