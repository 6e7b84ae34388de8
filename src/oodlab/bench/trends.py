"""The trends the papers lead one to expect, checked on a bench summary and reported as they
come out — a trend that does not reproduce is shown as such, never tuned away.

Each trend is judged on every metric it names (AUROC and FPR95, and AUPR-out where the paper
reports it), **paired over seeds**: the per-seed differences between the two rows, their mean
± sample std, and a verdict per metric by the noise rule of :mod:`oodlab.bench.stats`
(within noise when ``|mean| <= std``). The trend's verdict: *reproduced* when at least one
metric is clearly better and none clearly worse, *not reproduced* when at least one is clearly
worse and none clearly better, *within noise* when every metric is, *mixed* otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oodlab.bench.stats import NOISE_RULE, paired_difference
from oodlab.eval.report import percent

_OOD_AUPR = ("all.auroc", "all.aupr_out", "all.fpr95")


@dataclass(frozen=True)
class Trend:
    """``expected`` should beat (or match) ``baseline`` on ``metrics``; (method, score) pairs.

    ``metrics`` are summary row keys: ``all.auroc`` / ``all.aupr_out`` (higher is better),
    ``all.fpr95`` (lower), ``few_acc`` (higher).
    """

    claim: str
    expected: tuple[str, str]
    baseline: tuple[str, str]
    metrics: tuple[str, ...]
    source: str


_OE_STYLE = (
    ("oe", "msp"),
    ("energy_oe", "energy"),
    ("bin_disc", "bin_disc"),
    ("pascl", "msp"),
    ("imood", "bin_disc"),
    ("patt", "patt_energy"),
)

TRENDS: tuple[Trend, ...] = (
    *(
        Trend(
            f"{method} ({score}) detects OOD better than CE + MSP (outlier exposure helps)",
            (method, score),
            ("ce", "msp"),
            _OOD_AUPR,
            "Hendrycks et al. 2019; PASCL Table 1",
        )
        for method, score in _OE_STYLE
    ),
    Trend(
        "logit adjustment raises few-shot accuracy",
        ("ce_logit_adjust", "msp"),
        ("ce", "msp"),
        ("few_acc",),
        "Menon et al. 2021",
    ),
    Trend(
        "post-hoc ada_energy improves the energy score of the CE model",
        ("ce", "ada_energy"),
        ("ce", "energy"),
        _OOD_AUPR,
        "ImOOD §2.6 (b)",
    ),
    Trend(
        "post-hoc ada_msp improves MSP of the CE model",
        ("ce", "ada_msp"),
        ("ce", "msp"),
        _OOD_AUPR,
        "ImOOD §2.6 (b)",
    ),
    Trend(
        "ImOOD training improves its BinDisc baseline",
        ("imood", "bin_disc"),
        ("bin_disc", "bin_disc"),
        _OOD_AUPR,
        "ImOOD Table 1",
    ),
    *(
        Trend(
            f"{name} is at least as good as PASCL",
            (method, score),
            ("pascl", "msp"),
            _OOD_AUPR,
            f"{name} paper (PASCL as the floor)",
        )
        for name, method, score in (("ImOOD", "imood", "bin_disc"), ("PATT", "patt", "patt_energy"))
    ),
    Trend(
        "PATT's feature calibration improves the energy of the PATT model",
        ("patt", "patt_energy"),
        ("patt", "energy"),
        _OOD_AUPR,
        "PATT ablation (feature calibration on/off); oodlab's default weighting (balance: prior)",
    ),
)


def _overall(verdicts: list[str]) -> str:
    better, worse = "better" in verdicts, "worse" in verdicts
    if better and not worse:
        return "reproduced"
    if worse and not better:
        return "not reproduced"
    return "mixed" if better else "within noise"


def check_trends(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every trend whose two rows exist in the summary ``rows``: per metric both means and the
    paired difference (expected − baseline) with its verdict, and the trend's verdict."""
    by_key = {(r["method"], r["score"]): r for r in rows}
    checked = []
    for trend in TRENDS:
        expected, baseline = by_key.get(trend.expected), by_key.get(trend.baseline)
        if expected is None or baseline is None:
            continue
        per_metric = {}
        for metric in trend.metrics:
            if metric not in expected or metric not in baseline:
                continue
            diff = paired_difference(expected[metric], baseline[metric], metric)
            per_metric[metric] = {
                "expected_value": expected[metric]["mean"],
                "baseline_value": baseline[metric]["mean"],
                "difference": {k: diff[k] for k in ("mean", "std", "n", "seeds", "values")},
                "verdict": diff["verdict"],
            }
        if not per_metric:
            continue
        verdict = _overall([m["verdict"] for m in per_metric.values()])
        checked.append(
            {
                "claim": trend.claim,
                "expected": list(trend.expected),
                "baseline": list(trend.baseline),
                "metrics": per_metric,
                "verdict": verdict,
                "holds": verdict == "reproduced",
                "source": trend.source,
                "rule": NOISE_RULE,
            }
        )
    return checked


_MARKS = {
    "reproduced": "✓ reproduced",
    "not reproduced": "✗ not reproduced",
    "within noise": "≈ within noise",
    "mixed": "± mixed",
}


def _metric_text(metric: str, m: dict[str, Any]) -> str:
    d = m["difference"]
    spread = f" ± {100 * d['std']:.2f}" if d["n"] > 1 else ""
    return (
        f"{metric} {percent(m['expected_value'])} vs {percent(m['baseline_value'])}, "
        f"paired Δ {100 * d['mean']:+.2f}{spread} (n={d['n']}, {m['verdict']})"
    )


def trends_markdown(checked: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one bullet per trend with its verdict and, per metric, both means and
    the paired difference over seeds (mean ± sample std)."""
    if not checked:
        return []
    paired = any("metrics" in c for c in checked)
    rule = (
        f"Judged on every listed metric, {NOISE_RULE}; Δ = expected − baseline, in points."
        if paired
        else "Checked before oodlab judged trends paired over seeds: one metric each, means "
        "only; `oodlab bench` again gives the paired checks."
    )
    lines = ["## Trends expected from the papers", "", rule, ""]
    for c in checked:
        if "metrics" not in c:  # a summary written before the paired checks: one metric
            mark = "✓ reproduced" if c.get("holds") else "✗ not reproduced"
            lines.append(
                f"- {mark}: {c['claim']} — {c['metric']} "
                f"{percent(c['expected_value'])} ({'/'.join(c['expected'])}) vs "
                f"{percent(c['baseline_value'])} ({'/'.join(c['baseline'])}); "
                f"source: {c['source']}"
            )
            continue
        parts = "; ".join(_metric_text(k, m) for k, m in c["metrics"].items())
        lines.append(
            f"- {_MARKS[c['verdict']]}: {c['claim']} ({'/'.join(c['expected'])} vs "
            f"{'/'.join(c['baseline'])}) — {parts}; source: {c['source']}"
        )
    return [*lines, ""]
