"""Seed statistics: mean ± std, paired differences, the noise rule, the ranking steps, and the
LaTeX table's marking (best bold, second underlined, by each column's direction)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from oodlab.bench.latex import LAYOUTS, latex_escape, summary_tex
from oodlab.bench.stats import mean_std, paired_difference, ranking
from oodlab.errors import ConfigError


def test_mean_std_is_the_population_std_with_per_seed_values():
    stat = mean_std([0.9, 0.8, 0.95], [0, 1, 2], intervals=[[0.8, 1.0], [0.7, 0.9], [0.9, 1.0]])
    assert stat["mean"] == pytest.approx(np.mean([0.9, 0.8, 0.95]))
    assert stat["std"] == pytest.approx(np.std([0.9, 0.8, 0.95]))
    assert stat["values"] == [0.9, 0.8, 0.95]
    assert stat["seeds"] == [0, 1, 2]
    assert stat["ci"] == pytest.approx([0.8, 0.9666666])


def test_a_method_paired_with_itself_differs_by_exactly_zero():
    stat = mean_std([0.71, 0.64, 0.93], [0, 1, 2])
    diff = paired_difference(stat, stat, "all.auroc")
    assert diff["mean"] == 0.0
    assert diff["std"] == 0.0
    assert diff["values"] == [0.0, 0.0, 0.0]
    assert diff["verdict"] == "within noise"


def test_paired_differences_use_shared_seeds_and_the_sample_std():
    a = mean_std([0.80, 0.82, 0.90], [0, 1, 2])
    b = mean_std([0.70, 0.75, 0.50], [0, 1, 3])  # seed 2 missing, seed 3 extra
    diff = paired_difference(a, b, "all.auroc")
    assert diff["seeds"] == [0, 1]
    assert diff["values"] == pytest.approx([0.10, 0.07])
    assert diff["std"] == pytest.approx(np.std([0.10, 0.07], ddof=1))
    assert diff["verdict"] == "better"
    # lower is better for FPR95: a higher FPR95 is worse
    assert paired_difference(a, b, "near.fpr95")["verdict"] == "worse"
    # one seed: the bootstrap half-widths are the noise
    one_a = mean_std([0.80], [0], intervals=[[0.70, 0.90]])
    one_b = mean_std([0.75], [0], intervals=[[0.72, 0.78]])
    assert paired_difference(one_a, one_b)["verdict"] == "within noise"  # 0.05 <= 0.10
    assert paired_difference(mean_std([0.8], [0]), mean_std([0.75], [0]))["verdict"] == "better"


def _row(method, auroc, fpr, acc=(0.8, 0.8, 0.8)):
    return {
        "method": method,
        "score": "msp",
        "default_score": True,
        "all.auroc": mean_std(auroc, [0, 1, 2]),
        "all.fpr95": mean_std(fpr, [0, 1, 2]),
        "all.aupr_out": mean_std([a - 0.1 for a in auroc], [0, 1, 2]),
        "id_accuracy": mean_std(acc, [0, 1, 2]),
    }


def test_ranking_marks_the_steps_within_noise():
    rows = [
        _row("a", (0.90, 0.91, 0.92), (0.10, 0.11, 0.12)),
        _row("b", (0.89, 0.93, 0.90), (0.12, 0.10, 0.13)),  # within noise of a
        _row("c", (0.70, 0.71, 0.72), (0.50, 0.51, 0.52)),  # clearly below b
    ]
    ranked = ranking(rows)
    assert [r["method"] for r in ranked] == ["a", "b", "c"]
    assert ranked[1]["tied_with_above"]
    assert not ranked[2]["tied_with_above"]
    assert ranked[2]["step"]["all.auroc"]["mean"] == pytest.approx(np.mean([0.19, 0.22, 0.18]))


def _summary(extra=()):
    return {
        "preset": "toy",
        "description": "a toy",
        "seeds": [0, 1, 2],
        "rows": [
            _row("ce_logit", (0.70, 0.71, 0.72), (0.40, 0.41, 0.42), (0.60, 0.61, 0.62)),
            _row("oe", (0.90, 0.91, 0.92), (0.10, 0.11, 0.12), (0.50, 0.50, 0.50)),
            _row("imood", (0.80, 0.80, 0.80), (0.05, 0.05, 0.05), (0.70, 0.70, 0.70)),
        ],
        "extra_rows": list(extra),
    }


def test_latex_bolds_the_best_and_underlines_the_second_per_column_direction():
    paper = {"method": "imood (paper)", "score": "bin_disc", "all.auroc": {"mean": 0.99, "n": 1}}
    tex = summary_tex(_summary([paper]), "lt_papers")
    assert r"\toprule" in tex
    assert r"\bottomrule" in tex
    assert r"\midrule" in tex
    lines = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    assert r"\textbf{91.00}{\scriptsize$\pm$0.82}" in lines["oe"]  # AUROC: highest
    assert r"\underline{80.00}{\scriptsize$\pm$0.00}" in lines["imood"]
    assert r"\textbf{5.00}" in lines["imood"]  # FPR95: lowest is best
    assert r"\underline{11.00}" in lines["oe"]
    assert r"\textbf{70.00}" in lines["imood"]  # ACC
    assert "ce\\_logit" in lines  # escaped
    # the extra (paper) row is printed below a rule and never marked, even when it is best
    assert lines["imood (paper)"].split(" & ")[2] == "99.00"
    assert lines["imood (paper)"].split(" & ")[3] == "--"  # AUPR not given
    header = next(line for line in tex.splitlines() if line.startswith("Method"))
    assert re.findall(r"(AUROC|AUPR|FPR95|ACC)\$", header) == ["AUROC", "AUPR", "FPR95", "ACC"]
    with pytest.raises(ConfigError, match="unknown table layout"):
        summary_tex(_summary(), "nope")
    assert set(LAYOUTS) >= {"near_far", "lt_papers", "patt", "oodlab"}
    assert latex_escape("a_b&c%") == r"a\_b\&c\%"
