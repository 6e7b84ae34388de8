"""Trend checks on hand-made summaries: paired over seeds, judged per metric, with a verdict
of reproduced / not reproduced / within noise."""

from __future__ import annotations

from pathlib import Path

from oodlab.bench.stats import mean_std
from oodlab.bench.trends import check_trends, trends_markdown

SEEDS = (0, 1, 2)


def row(method, score, auroc=(0.5, 0.5, 0.5), fpr95=(0.5, 0.5, 0.5), few=(0.5, 0.5, 0.5)):
    return {
        "method": method,
        "score": score,
        "all.auroc": mean_std(auroc, SEEDS),
        "all.fpr95": mean_std(fpr95, SEEDS),
        "few_acc": mean_std(few, SEEDS),
    }


def test_a_difference_smaller_than_the_seed_noise_is_within_noise():
    # ada_energy vs energy on the CE model: per-seed differences +0.03, -0.04, +0.02 (mean
    # +0.0033, sample std 0.038) on AUROC, and -0.01, +0.02, -0.02 on FPR95: both tie.
    rows = [
        row("ce", "energy", auroc=(0.70, 0.66, 0.71), fpr95=(0.60, 0.58, 0.63)),
        row("ce", "ada_energy", auroc=(0.73, 0.62, 0.73), fpr95=(0.59, 0.60, 0.61)),
    ]
    (check,) = [c for c in check_trends(rows) if c["expected"] == ["ce", "ada_energy"]]
    assert check["verdict"] == "within noise"
    assert not check["holds"]
    auroc = check["metrics"]["all.auroc"]
    assert auroc["verdict"] == "within noise"
    assert auroc["difference"]["values"] == [0.73 - 0.70, 0.62 - 0.66, 0.73 - 0.71]
    assert auroc["difference"]["mean"] == sum(auroc["difference"]["values"]) / 3
    assert check["metrics"]["all.fpr95"]["verdict"] == "within noise"
    assert "≈ within noise" in "\n".join(trends_markdown([check]))


def test_clear_differences_reproduce_or_fail_by_the_metric_direction():
    rows = [
        row("ce", "msp", auroc=(0.70, 0.71, 0.69), fpr95=(0.60, 0.62, 0.58), few=(0.1,) * 3),
        row("oe", "msp", auroc=(0.95, 0.96, 0.94), fpr95=(0.30, 0.33, 0.31)),  # better on both
        row("ce_logit_adjust", "msp", few=(0.30, 0.32, 0.29)),  # few-shot accuracy up
        row("pascl", "msp", auroc=(0.90, 0.91, 0.92), fpr95=(0.20, 0.22, 0.21)),
        row("patt", "patt_energy", auroc=(0.70, 0.72, 0.69), fpr95=(0.45, 0.44, 0.47)),
    ]
    checked = {c["claim"]: c for c in check_trends(rows)}
    oe = next(c for c in checked.values() if c["expected"] == ["oe", "msp"])
    assert oe["verdict"] == "reproduced"
    assert oe["holds"]
    assert oe["metrics"]["all.fpr95"]["verdict"] == "better"  # lower FPR95 is better
    assert oe["metrics"]["all.fpr95"]["difference"]["mean"] < 0
    assert checked["logit adjustment raises few-shot accuracy"]["verdict"] == "reproduced"
    patt = checked["PATT is at least as good as PASCL"]
    assert patt["verdict"] == "not reproduced"
    assert {m["verdict"] for m in patt["metrics"].values()} == {"worse"}
    # Methods absent from the bench (imood, bin_disc, energy_oe) give no trend.
    assert not any("imood" in c["expected"] for c in checked.values())
    text = "\n".join(trends_markdown(list(checked.values())))
    assert text.count("✗ not reproduced") == 1
    assert "95.00 vs 70.00" in text  # oe vs ce mean AUROC
    assert "paired Δ +25.00 ± 0.00 (n=3, better)" in text  # AUROC: +0.25 on every seed


def test_opposite_verdicts_on_two_metrics_are_mixed():
    rows = [
        row("pascl", "msp", auroc=(0.90, 0.91, 0.92), fpr95=(0.20, 0.22, 0.21)),
        row("imood", "bin_disc", auroc=(0.95, 0.96, 0.97), fpr95=(0.40, 0.42, 0.41)),
    ]
    (check,) = check_trends(rows)
    assert check["verdict"] == "mixed"


def test_paper_presets_are_built_from_the_config_files():
    from oodlab.bench import PRESETS, run_config

    preset = PRESETS.get("cifar10_lt").factory()
    by_label = {m.label: m for m in preset.methods}
    assert by_label["patt"].default_score == "patt_energy"
    assert by_label["imood"].default_score == "bin_disc"
    config = run_config(preset, by_label["pascl"], seed=2, data_root=Path("/data"))
    assert config.method.options["contrast_weight"] == 0.1
    assert config.train.seed == 2
    assert config.data.data_root == "/data"
    assert PRESETS.get("cifar100_lt").factory().methods[5].label == "pascl"


def test_synthesis_presets_compare_each_method_with_its_ce_baseline_on_the_same_sets():
    from oodlab.bench import PRESETS, run_config

    expected = {
        "waterbirds": {"ce": "msp", "ascood": "iodin"},
        "aircraft": {"ce": "msp", "ascood": "iodin"},
        "cifar100": {"ce": "msp", "ascood": "iodin", "npos": "knn"},
        "imagenet1k": {"mos": "mos"},
    }
    for name, scores in expected.items():
        preset = PRESETS.get(name).factory()
        assert {m.label: m.default_score for m in preset.methods} == scores
    cifar = PRESETS.get("cifar10").factory()
    configs = {m.label: run_config(cifar, m, seed=1) for m in cifar.methods}
    # NPOS's own file names the paper's OOD sets; in the bench every method meets the same ones.
    assert configs["npos"].data.options == configs["ce"].data.options == {}
    assert {c.data.benchmark for c in configs.values()} == {"cifar10"}
    assert configs["npos"].method.options["k"] == 300


def test_every_open_set_run_trains_on_the_open_set():
    from oodlab.bench import PRESETS, run_config

    preset = PRESETS.get("fmnist_lt_open").factory()
    configs = {m.label: run_config(preset, m, seed=0) for m in preset.methods}
    assert {c.data.benchmark for c in configs.values()} == {"fmnist_lt_open"}
    assert configs["mos"].method.options["groups"] == [0, 1, 0, 1, 0, 2]
