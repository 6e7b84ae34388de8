"""``summary.tex``: a booktabs table of a bench summary, ready to paste into a paper.

One row per method with its own score; per column the best mean is **bold** and the second
best underlined (direction-aware: lower is better for FPR95); ``± std`` over seeds follows in
``\\scriptsize``. Extra rows (e.g. a paper's published numbers, ``summary["extra_rows"]``) go
below a ``\\midrule`` and never take part in the bold / underline marking. Needs
``\\usepackage{booktabs}`` in the preamble.

Column layouts (``LAYOUTS``), as the papers print them:

* ``near_far`` (default): near / far / all AUROC and FPR95, then ID accuracy;
* ``lt_papers``: AUROC / AUPR / FPR95 / ACC (PASCL, ImOOD: AUPR = AUPR-out, FPR95 = ID
  flagged at 95% OOD flagged) over all OOD sets;
* ``patt``: AUROC / AUPR-in / AUPR-out / FPR95 / ACC (PATT's tables);
* ``shots``: AUROC / FPR95 / ACC / many / medium / few;
* ``oodlab``: every metric of the markdown table.
"""

from __future__ import annotations

import math
from typing import Any

from oodlab.bench.stats import lower_is_better
from oodlab.errors import ConfigError

__all__ = ["LAYOUTS", "latex_escape", "summary_tex"]

Column = tuple[str, str]  # (summary row key, LaTeX header)

LAYOUTS: dict[str, tuple[Column, ...]] = {
    "near_far": (
        ("near.auroc", r"Near AUROC$\uparrow$"),
        ("near.fpr95", r"Near FPR95$\downarrow$"),
        ("far.auroc", r"Far AUROC$\uparrow$"),
        ("far.fpr95", r"Far FPR95$\downarrow$"),
        ("all.auroc", r"All AUROC$\uparrow$"),
        ("all.fpr95", r"All FPR95$\downarrow$"),
        ("id_accuracy", r"ACC$\uparrow$"),
    ),
    "lt_papers": (
        ("all.auroc", r"AUROC$\uparrow$"),
        ("all.aupr_out", r"AUPR$\uparrow$"),
        ("all.fpr95", r"FPR95$\downarrow$"),
        ("id_accuracy", r"ACC$\uparrow$"),
    ),
    "patt": (
        ("all.auroc", r"AUROC$\uparrow$"),
        ("all.aupr_in", r"AUPR-in$\uparrow$"),
        ("all.aupr_out", r"AUPR-out$\uparrow$"),
        ("all.fpr95", r"FPR95$\downarrow$"),
        ("id_accuracy", r"ACC$\uparrow$"),
    ),
    "shots": (
        ("all.auroc", r"AUROC$\uparrow$"),
        ("all.fpr95", r"FPR95$\downarrow$"),
        ("id_accuracy", r"ACC$\uparrow$"),
        ("many_acc", r"Many$\uparrow$"),
        ("medium_acc", r"Medium$\uparrow$"),
        ("few_acc", r"Few$\uparrow$"),
    ),
    "oodlab": (
        ("all.auroc", r"AUROC$\uparrow$"),
        ("all.aupr_in", r"AUPR-in$\uparrow$"),
        ("all.aupr_out", r"AUPR-out$\uparrow$"),
        ("all.fpr95", r"FPR95$\downarrow$"),
        ("all.fpr95_id", r"FPR95\textsubscript{ID}$\downarrow$"),
        ("id_accuracy", r"ACC$\uparrow$"),
        ("many_acc", r"Many$\uparrow$"),
        ("medium_acc", r"Medium$\uparrow$"),
        ("few_acc", r"Few$\uparrow$"),
    ),
}

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
}


def latex_escape(text: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def _marks(values: list[float], lower: bool) -> list[str]:
    """Per value ``"best"``, ``"second"`` or ``""`` (ties share a mark; NaN never marked)."""
    distinct = sorted({round(v, 6) for v in values if math.isfinite(v)}, reverse=not lower)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    out = []
    for v in values:
        r = round(v, 6) if math.isfinite(v) else None
        out.append("best" if r == best and r is not None else "second" if r == second else "")
    return out


def _cell(stat: dict[str, Any] | None, mark: str) -> str:
    if stat is None or not math.isfinite(stat.get("mean", float("nan"))):
        return "--"
    mean = f"{100 * stat['mean']:.2f}"
    mean = {"best": rf"\textbf{{{mean}}}", "second": rf"\underline{{{mean}}}"}.get(mark, mean)
    if stat.get("n", 1) > 1 and "std" in stat:
        return rf"{mean}{{\scriptsize$\pm${100 * stat['std']:.2f}}}"
    return mean


def summary_tex(summary: dict[str, Any], layout: str = "near_far") -> str:
    """The booktabs table of the methods' own scores in ``layout`` (module doc)."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown table layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    rows = [r for r in summary["rows"] if r["default_score"]]
    columns = [c for c in LAYOUTS[layout] if any(c[0] in r for r in rows)]
    extra = list(summary.get("extra_rows", []))
    marks = {
        key: _marks(
            [r[key]["mean"] if key in r else float("nan") for r in rows], lower_is_better(key)
        )
        for key, _ in columns
    }
    seeds = summary.get("seeds", [])
    lines = [
        f"% oodlab bench {summary['preset']}: {summary.get('description', '')}",
        f"% seeds {seeds}; mean and population std over seeds, in percent; best bold, second "
        "underlined; FPR95 = ID flagged at 95% OOD flagged. Needs \\usepackage{booktabs}.",
        r"\begin{tabular}{ll" + "c" * len(columns) + "}",
        r"\toprule",
        " & ".join(["Method", "Score", *(h for _, h in columns)]) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(rows):
        cells = [latex_escape(row["method"]), latex_escape(row["score"])]
        cells += [_cell(row.get(key), marks[key][i]) for key, _ in columns]
        lines.append(" & ".join(cells) + r" \\")
    if extra:
        lines.append(r"\midrule")
        for row in extra:
            cells = [
                latex_escape(str(row.get("method", ""))),
                latex_escape(str(row.get("score", ""))),
            ]
            cells += [_cell(row.get(key), "") for key, _ in columns]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
