"""Views of an :class:`~oodlab.eval.evaluate.EvalResult`: a short ``repr`` and a DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oodlab.errors import ConfigError

if TYPE_CHECKING:
    from oodlab.eval.evaluate import EvalResult

SHOWN = ("auroc", "fpr95", "fpr95_id")


def short_repr(result: EvalResult) -> str:
    """A few lines: ID accuracy, the OOD sets, and per score the mean AUROC and FPR95s."""
    sets = sorted({s for r in result.scores.values() for s in r.per_set})
    head = f"EvalResult(ID accuracy {100 * result.id_accuracy:.2f}%, OOD sets: {', '.join(sets)}"
    lines = [head + (f"; skipped {len(result.skipped)} scores" if result.skipped else "") + ")"]
    if result.scores:
        width = max(len(name) for name in result.scores)
        lines.append(f"  {'score':<{width}}  AUROC   FPR95  FPR95@ID  (mean over all sets, %)")
        for name, r in result.scores.items():
            means = r.means.get("all", {})
            values = "  ".join(f"{100 * means.get(k, float('nan')):6.2f}" for k in SHOWN)
            lines.append(f"  {name:<{width}}  {values}")
    return "\n".join(lines)


def to_frame(result: EvalResult) -> Any:
    """One row per (score, OOD set or group mean), one column per metric (fractions)."""
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(
            "EvalResult.to_frame needs pandas; pip install 'oodlab[frame]' (or use to_dict())"
        ) from None
    from oodlab.eval.report import rows

    table = rows(result)
    frame = pd.DataFrame(table)
    if frame.empty:
        return frame
    return frame.set_index(["score", "set"])
