"""The format registry, the :class:`Converted` result and :func:`load_checkpoint` (see the
package docstring for the formats and how they are chosen)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from oodlab.errors import CheckpointError, ConfigError
from oodlab.registry import Registry

Convert = Callable[[Mapping[str, Tensor], dict[str, Any]], "Converted"]
FORMATS: Registry[Converted] = Registry("checkpoint format")


def register_format(
    name: str, *, paper: str, matches: Callable[[Sequence[str]], float], layout: str
) -> Callable[[Callable[..., Converted]], Callable[..., Converted]]:
    """Register a converter; ``matches(keys)`` is the share of ``keys`` it knows (0..1) and
    ``layout`` a one-line description of the official keys (``oodlab list formats``)."""
    return FORMATS.register(name, paper=paper, matches=matches, layout=layout)


@dataclass
class Converted:
    """What a converter makes of a released state dict.

    Attributes:
        model: registry name of the backbone; ``model_options`` its options.
        num_classes: outputs of the backbone's classifier.
        state: the tensors under the names of the built model's ``state_dict``.
        heads, classifier, zscore_sigma: as :func:`oodlab.models.attach_heads` takes them.
        buffers: extra buffers registered on the built model (MOS's ``group_class_ids``).
        from_model: keys the checkpoint has no tensor for, kept as the built model makes
            them (ImOOD's unused affine when absent; MOS's replaced backbone classifier).
        leftover: released tensors without a place in the model (PATT's ``finalScore``,
            NPOS's ``prototypes``), by released name.
        normalization: a name of :data:`oodlab.models.normalization.NORMALIZATIONS`.
        scores: the scores the paper evaluates this model with (``name`` or
            ``name:key=value``), used by ``--scores default``.
        notes: one-line remarks printed when the checkpoint is loaded.
    """

    model: str
    num_classes: int
    state: dict[str, Tensor]
    model_options: dict[str, Any] = field(default_factory=dict)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    classifier: dict[str, Any] | None = None
    zscore_sigma: float | None = None
    buffers: dict[str, Tensor] = field(default_factory=dict)
    from_model: list[str] = field(default_factory=list)
    leftover: dict[str, Tensor] = field(default_factory=dict)
    normalization: str | None = None
    scores: list[str] = field(default_factory=lambda: ["msp", "energy"])
    notes: list[str] = field(default_factory=list)


def key_matcher(*patterns: str) -> Callable[[Sequence[str]], float]:
    """``matches`` from regular expressions: the share of keys that fully match one of them."""
    compiled = [re.compile(p) for p in patterns]

    def matches(keys: Sequence[str]) -> float:
        if not keys:
            return 0.0
        hits = sum(1 for k in keys if any(c.fullmatch(strip(k)) for c in compiled))
        return hits / len(keys)

    matches.patterns = compiled  # type: ignore[attr-defined]
    return matches


def unmatched_keys(name: str, keys: Sequence[str]) -> list[str]:
    """The keys the format ``name`` does not know, in file order."""
    patterns = getattr(FORMATS.get(name).extra["matches"], "patterns", [])
    return [k for k in keys if not any(p.fullmatch(strip(k)) for p in patterns)]


def strip(key: str) -> str:
    """``key`` without the ``module.`` prefix of ``nn.DataParallel`` / DDP."""
    return key.removeprefix("module.")


def unwrap(obj: object, source: str) -> dict[str, Tensor]:
    """The state dict inside a loaded checkpoint: bare, or under ``state_dict`` / ``model`` /
    ``net`` (NPOS: ``state_dict``; MOS: ``model``); non-tensor entries are dropped."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "net"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no state dict (a mapping of names to tensors)")
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def detect_format(state: Mapping[str, Tensor], source: str = "the checkpoint") -> str:
    """The registered format that knows every key of ``state``; else one line naming the
    nearest format and its first unmatched keys."""
    keys = list(state)
    ranked = sorted(((e.extra["matches"](keys), e.name) for e in FORMATS), reverse=True)
    best_share, best = ranked[0]
    if best_share == 1.0:
        return best
    missing = unmatched_keys(best, keys)
    raise CheckpointError(
        f"{source}: unknown checkpoint layout; the nearest known format is {best!r} "
        f"({best_share:.0%} of the keys), which does not know {missing[:3]}; pass --format "
        f"NAME ({', '.join(FORMATS.names())}) or --model NAME for an oodlab state dict"
    )


def build_converted(converted: Converted, in_channels: int) -> nn.Module:
    """The oodlab model a :class:`Converted` describes, holding its weights (strict load)."""
    from oodlab.models import MODELS, attach_heads
    from oodlab.models.pretrained import state_dict_mismatch

    try:
        backbone = MODELS.create(
            converted.model,
            num_classes=converted.num_classes,
            in_channels=in_channels,
            **converted.model_options,
        )
    except TypeError as exc:
        raise ConfigError(f"model {converted.model!r}: {exc}") from None
    model = attach_heads(
        backbone,
        converted.num_classes,
        heads=converted.heads or None,
        classifier=converted.classifier,
        zscore_sigma=converted.zscore_sigma,
    )
    for name, value in converted.buffers.items():
        model.register_buffer(name, value.clone())
    own = model.state_dict()
    counters = {k for k in own if k.endswith("num_batches_tracked")}
    kept = [*converted.buffers, *converted.from_model]
    state = {**{k: own[k] for k in kept if k in own}, **converted.state}
    problem = state_dict_mismatch(own, state, not_needed=counters)
    if problem:
        raise CheckpointError(
            f"the converted checkpoint does not fit {converted.model!r}: tensors {problem}"
        )
    model.load_state_dict(state, strict=False)
    return model.eval()


@dataclass
class LoadedCheckpoint:
    """A released checkpoint turned into an oodlab model (see :func:`load_checkpoint`)."""

    model: nn.Module
    format: str
    detected: bool
    converted: Converted


def load_checkpoint(
    path: str | Path,
    format: str | None = None,
    options: Mapping[str, Any] | None = None,
    in_channels: int = 3,
) -> LoadedCheckpoint:
    """Read a released checkpoint and build its oodlab model (without input normalisation;
    ``converted.normalization`` names the format's, see
    :func:`oodlab.models.normalization.attach_normalization`).

    Args:
        path: a ``torch.save`` file (read with ``weights_only=True``).
        format: a name of :data:`FORMATS`, or ``None`` to detect it from the keys.
        options: format options (e.g. MOS's ``groups``); unknown ones raise.
        in_channels: image channels.
    """
    from oodlab.io import safe_torch_load

    state = unwrap(safe_torch_load(Path(path)), str(path))
    detected = format is None
    name = detect_format(state, str(path)) if format is None else FORMATS.get(format).name
    opts = dict(options or {})
    try:
        converted = FORMATS.get(name).factory(state, opts)
    except KeyError as exc:
        unknown = unmatched_keys(name, list(state))
        raise CheckpointError(
            f"{path} is not in the {name!r} layout: it has no {exc.args[0]!r} tensor "
            f"(keys the format does not know: {unknown[:3]})"
        ) from None
    if opts:
        raise ConfigError(f"format {name!r} takes no option(s) {sorted(opts)}")
    return LoadedCheckpoint(build_converted(converted, in_channels), name, detected, converted)


__all__ = [
    "FORMATS",
    "Converted",
    "LoadedCheckpoint",
    "detect_format",
    "load_checkpoint",
    "register_format",
]
