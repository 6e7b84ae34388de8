"""Options checked against the signature of what receives them (a benchmark preset, a model
factory), so a typo or a wrong type is one line before anything is built, instead of a
``TypeError`` from deep inside."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, get_type_hints

from oodlab.config import _coerce
from oodlab.errors import ConfigError


def check_call_options(
    fn: Any, options: Mapping[str, Any], where: str, skip: Sequence[str] = ()
) -> dict[str, Any]:
    """``options`` checked against ``fn``'s signature: unknown names (with the nearest valid
    one) and values of the wrong type (by its annotations) raise one line, before ``fn`` runs.
    Returns the options with lossless conversions applied (an int where a float is expected)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return dict(options)
    params = {
        name: p
        for name, p in signature.parameters.items()
        if name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # an annotation that does not resolve: check names only
        hints = {}
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key not in params:
            if takes_any:
                checked[key] = value
                continue
            close = difflib.get_close_matches(str(key), list(params), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(sorted(params)) or "none"
            raise ConfigError(f"{where}: unknown option {key!r}.{hint} Valid options: {valid}.")
        hint_tp = hints.get(key)
        checked[key] = value if hint_tp is None else _coerce(value, hint_tp, f"{where}.{key}")
    return checked
