"""The trends the papers lead one to expect, checked on a bench summary and reported as they
come out — a trend that does not reproduce is shown as such, never tuned away."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oodlab.eval.report import percent


@dataclass(frozen=True)
class Trend:
    """``expected`` should beat (or match) ``baseline`` on ``metric``; (method, score) pairs.

    ``metric`` is a summary row key: ``all.auroc`` (higher is better), ``all.fpr95`` (lower),
    ``few_acc`` (higher).
    """

    claim: str
    expected: tuple[str, str]
    baseline: tuple[str, str]
    metric: str
    source: str


_LOWER_IS_BETTER = ("all.fpr95", "all.fpr95_id")
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
            f"{method} ({score}) flags fewer ID images than CE + MSP (outlier exposure helps)",
            (method, score),
            ("ce", "msp"),
            "all.fpr95",
            "Hendrycks et al. 2019; PASCL Table 1",
        )
        for method, score in _OE_STYLE
    ),
    Trend(
        "logit adjustment raises few-shot accuracy",
        ("ce_logit_adjust", "msp"),
        ("ce", "msp"),
        "few_acc",
        "Menon et al. 2021",
    ),
    Trend(
        "post-hoc ada_energy improves the energy score of the CE model",
        ("ce", "ada_energy"),
        ("ce", "energy"),
        "all.auroc",
        "ImOOD §2.6 (b)",
    ),
    Trend(
        "post-hoc ada_msp improves MSP of the CE model",
        ("ce", "ada_msp"),
        ("ce", "msp"),
        "all.auroc",
        "ImOOD §2.6 (b)",
    ),
    *(
        Trend(
            f"ImOOD training improves its BinDisc baseline ({metric})",
            ("imood", "bin_disc"),
            ("bin_disc", "bin_disc"),
            metric,
            "ImOOD Table 1",
        )
        for metric in ("all.auroc", "all.fpr95")
    ),
    *(
        Trend(
            f"{name} is at least as good as PASCL ({metric})",
            (method, score),
            ("pascl", "msp"),
            metric,
            f"{name} paper (PASCL as the floor)",
        )
        for name, method, score in (("ImOOD", "imood", "bin_disc"), ("PATT", "patt", "patt_energy"))
        for metric in ("all.auroc", "all.fpr95")
    ),
)


def check_trends(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every trend whose two rows exist in the summary ``rows``, with both values and whether
    it holds (ties count as holding: "at least as good")."""
    by_key = {(r["method"], r["score"]): r for r in rows}
    checked = []
    for trend in TRENDS:
        expected, baseline = by_key.get(trend.expected), by_key.get(trend.baseline)
        if expected is None or baseline is None:
            continue
        a, b = expected[trend.metric]["mean"], baseline[trend.metric]["mean"]
        holds = a <= b if trend.metric in _LOWER_IS_BETTER else a >= b
        checked.append(
            {
                "claim": trend.claim,
                "metric": trend.metric,
                "expected": list(trend.expected),
                "baseline": list(trend.baseline),
                "expected_value": a,
                "baseline_value": b,
                "holds": bool(holds),
                "source": trend.source,
            }
        )
    return checked


def trends_markdown(checked: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one bullet per trend, ✓ if it reproduced, ✗ if not."""
    if not checked:
        return []
    lines = ["## Trends expected from the papers", ""]
    for c in checked:
        mark = "✓ reproduced" if c["holds"] else "✗ not reproduced"
        lines.append(
            f"- {mark}: {c['claim']} — {c['metric']} {percent(c['expected_value'])} "
            f"({'/'.join(c['expected'])}) vs {percent(c['baseline_value'])} "
            f"({'/'.join(c['baseline'])}); source: {c['source']}"
        )
    return [*lines, ""]
