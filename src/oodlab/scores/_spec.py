"""Score specifications with hyper-parameters, as the command line writes them.

``knn:k=300,react:percentile=95`` is KNN with ``k = 300`` and ReAct at the 95th percentile;
further parameters of one score follow after commas (``odin:temperature=1000,epsilon=0.0014``)
or colons (``odin:temperature=1000:epsilon=0.0014``). Values are read as YAML scalars
(``300`` an int, ``0.5`` a float, ``true``, ``features`` a string; ``[0.5, 0.5]`` inside a
colon-separated item for a list).
"""

from __future__ import annotations

from typing import Any

import yaml

from oodlab.errors import ConfigError

ScoreSpec = str | tuple[str, dict[str, Any]]


def _value(text: str, item: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"score parameter {item!r}: {text!r} is not a value") from None


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets (``[0.5, 0.5]`` stays one value)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += int(char in "[{(")
        depth -= int(char in "]})")
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_score_specs(text: str) -> list[ScoreSpec]:
    """``"msp,knn:k=300"`` → ``["msp", ("knn", {"k": 300})]``; one-line errors on bad input."""
    specs: list[tuple[str, dict[str, Any]]] = []
    current: tuple[str, dict[str, Any]] | None = None
    for raw in (part.strip() for part in _split_top(text)):
        if not raw:
            continue
        if "=" in raw.split(":", 1)[0]:  # "key=value": another parameter of the last score
            if current is None:
                raise ConfigError(
                    f"score parameter {raw!r} comes before any score name; write NAME:{raw}"
                )
            pairs = raw.split(":")
        else:
            name, *pairs = raw.split(":")
            if not name.strip():
                raise ConfigError(f"score item {raw!r} has no name; write e.g. knn:k=300")
            current = (name.strip(), {})
            specs.append(current)
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ConfigError(
                    f"score parameter {pair!r} of {current[0]!r} is not KEY=VALUE (e.g. knn:k=300)"
                )
            current[1][key.strip()] = _value(value.strip(), pair)
    if not specs:
        raise ConfigError("--scores is empty; give e.g. --scores msp,energy or --scores zoo")
    return [spec[0] if not spec[1] else spec for spec in specs]


def spec_name(spec: ScoreSpec) -> str:
    return spec if isinstance(spec, str) else spec[0]
