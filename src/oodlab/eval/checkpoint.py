"""``oodlab eval --checkpoint FILE``: build the model a weights file belongs to.

Two routes: ``--model NAME`` reads an oodlab state dict into a registered model (options from
``--model-set``); otherwise the file is a released checkpoint, converted by ``--format NAME``
or by the format detected from its keys (:mod:`oodlab.models.converters`; the detected format
is printed). The input normalisation comes from ``--normalize`` (or ``--model-set mean=[…]
std=[…]``), else from the format's known default; an oodlab state dict without either is
refused in one line: running it on unnormalised images would give wrong numbers silently.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodlab.errors import CheckpointError, ConfigError, UnknownNameError

if TYPE_CHECKING:  # the parser is built without importing torch
    from torch import nn

    from oodlab.models.normalization import Stats

#: The names of :data:`oodlab.models.normalization.NORMALIZATIONS` (a test keeps them equal).
NORMALIZATION_NAMES = ("none", "cifar10", "cifar10_patt", "cifar100", "imagenet", "bit", "clip")

NORMALIZE_HELP = (
    "input normalisation the checkpoint was trained with, applied inside the model: "
    f"{', '.join(NORMALIZATION_NAMES)}, 'MEAN,STD' or 'M1,M2,M3/S1,S2,S3' (required with "
    "--model unless --model-set gives mean and std)"
)


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--checkpoint`` options beyond ``--model`` / ``--model-set``."""
    parser.add_argument("--normalize", metavar="STATS", help=NORMALIZE_HELP)
    parser.add_argument(
        "--protocol",
        metavar="NAME",
        help="a paper's evaluation protocol (oodlab list protocols): its benchmark, scores and "
        "the published table printed beside ours",
    )
    parser.add_argument(
        "--paper-row",
        metavar="ROW",
        help="with --protocol: compare with this row of the paper's table (e.g. OE)",
    )
    parser.add_argument(
        "--benchmark-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="benchmark preset option for --checkpoint, e.g. n_aux=1000 (repeatable)",
    )
    parser.add_argument(
        "--format",
        metavar="NAME",
        help="released checkpoint layout (oodlab list formats); default: detected from the "
        "keys when --model is not given",
    )


def normalization_of(
    args: argparse.Namespace, options: dict[str, Any]
) -> tuple[bool, Stats | None]:
    """``(known, stats)`` from ``--normalize`` or ``mean``/``std`` in ``options`` (popped)."""
    from oodlab.models.normalization import parse_normalize, validate_stats

    mean, std = options.pop("mean", None), options.pop("std", None)
    given = getattr(args, "normalize", None)
    if mean is not None or std is not None:
        if given is not None:
            raise ConfigError("give the normalisation once: --normalize or --model-set mean/std")
        if mean is None or std is None:
            raise ConfigError("--model-set mean=[...] and std=[...] go together: give both")
        if not isinstance(mean, list | tuple) or not isinstance(std, list | tuple):
            mean, std = [mean], [std]
        return True, validate_stats(mean, std, "--model-set mean/std")
    if given is not None:
        return True, parse_normalize(given)
    return False, None


def load_checkpoint_model(
    args: argparse.Namespace, num_classes: int, in_channels: int
) -> tuple[nn.Module, list[str]]:
    """The model holding ``--checkpoint``'s weights and its input normalisation, and the
    default scores (the format's paper's; ``msp, energy`` for an oodlab state dict)."""
    if getattr(args, "format", None) is not None or not args.model:
        if args.model and args.format:
            raise ConfigError("give --model (an oodlab state dict) or --format, not both")
        return _load_released(args, num_classes, in_channels)
    from oodlab.config import apply_overrides
    from oodlab.io import safe_torch_load
    from oodlab.models import MODELS
    from oodlab.models.normalization import attach_normalization
    from oodlab.models.pretrained import state_dict_mismatch
    from oodlab.options import check_call_options

    options = apply_overrides({}, args.model_set)
    known, stats = normalization_of(args, options)
    options = check_call_options(
        MODELS.get(args.model).factory,
        options,
        f"--model-set of {args.model!r}",
        skip=("num_classes", "in_channels"),
    )
    if not known:
        raise ConfigError(
            f"the input normalisation of {args.checkpoint} is unknown; give --normalize NAME "
            f"({', '.join(NORMALIZATION_NAMES)}) or --normalize MEAN,STD (e.g. --normalize "
            "none for a model trained on [0, 1] images)"
        )
    try:
        model = MODELS.create(
            args.model, num_classes=num_classes, in_channels=in_channels, **options
        )
    except UnknownNameError:
        raise
    except TypeError as exc:
        raise ConfigError(f"model {args.model!r}: {exc}") from None
    state = safe_torch_load(args.checkpoint)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(
            f"{args.checkpoint} holds a {type(state).__name__}, not a state dict of named "
            "tensors; save it with torch.save(model.state_dict(), path)"
        )
    problem = state_dict_mismatch(
        model.state_dict(), state, {k for k in model.state_dict() if "num_batches_tracked" in k}
    )
    if problem:
        raise CheckpointError(
            f"{args.checkpoint} does not fit model {args.model!r} (wrong architecture or "
            f"options): tensors {problem}"
        )
    model.load_state_dict(state, strict=False)
    return attach_normalization(model, stats, in_channels), ["msp", "energy"]


def _load_released(
    args: argparse.Namespace, num_classes: int, in_channels: int
) -> tuple[nn.Module, list[str]]:
    from oodlab.config import apply_overrides
    from oodlab.models.converters import load_checkpoint
    from oodlab.models.normalization import NORMALIZATIONS, attach_normalization

    options = apply_overrides({}, args.model_set)
    known, stats = normalization_of(args, options)
    loaded = load_checkpoint(args.checkpoint, args.format, options, in_channels)
    converted = loaded.converted
    how = "detected" if loaded.detected else "given"
    if not known:
        stats = NORMALIZATIONS[converted.normalization or "none"]
    where = "--normalize" if known else f"the {loaded.format} default"
    norm = "none" if stats is None else f"mean {list(stats[0])}, std {list(stats[1])}"
    print(f"checkpoint format: {loaded.format} ({how}); input normalisation: {norm} ({where})")
    for note in converted.notes:
        print(f"  {note}")
    if converted.leftover:
        print(f"  not part of the model: {', '.join(sorted(converted.leftover))}")
    if converted.num_classes != num_classes:
        raise CheckpointError(
            f"{args.checkpoint} classifies {converted.num_classes} classes but the benchmark has "
            f"{num_classes}; pick the benchmark the checkpoint was trained on"
        )
    return attach_normalization(loaded.model, stats, in_channels), list(converted.scores)


def with_method_params(method: str, scores: list[str]) -> list[str]:
    """``scores`` with the hyper-parameters the run's method declares for its own score
    (registry ``score_params``; NPOS: ``knn:k=300``), unless a score already has some."""
    from oodlab.train.recipes import METHODS

    declared = METHODS.get(method).extra.get("score_params", {})
    out = []
    for spec in scores:
        params = declared.get(spec) if ":" not in spec else None
        if params:
            spec = spec + ":" + ":".join(f"{k}={v}" for k, v in params.items())
        out.append(spec)
    return out


def checkpoint_benchmark(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The benchmark of ``--checkpoint``: ``--benchmark``, else the protocol's, with the
    protocol's options and ``--benchmark-set`` overrides."""
    from oodlab.config import apply_overrides

    options: dict[str, Any] = {}
    name = args.benchmark
    protocol = getattr(args, "protocol", None)
    if protocol is not None:
        from oodlab.eval.protocols import get_protocol

        preset = get_protocol(protocol)
        if name is not None and name != preset.benchmark:
            raise ConfigError(
                f"protocol {protocol!r} evaluates on benchmark {preset.benchmark!r}, not "
                f"{name!r}; drop --benchmark"
            )
        name, options = preset.benchmark, dict(preset.benchmark_options)
    if name is None:
        raise ConfigError(
            "--checkpoint needs --benchmark NAME or --protocol NAME (and --model NAME for an "
            "oodlab state dict)"
        )
    return name, apply_overrides(options, getattr(args, "benchmark_set", []))


def record_kept_checkpoint(run_dir: Path, out: Path) -> str:
    """Say in ``out/results.{json,md}`` which of the run's checkpoints was evaluated."""
    import json

    from oodlab.io import atomic_write_json, atomic_write_text
    from oodlab.train.keep import describe, kept_checkpoint

    kept = kept_checkpoint(run_dir)
    line = f"Evaluated: {describe(kept)}."
    md, js = out / "results.md", out / "results.json"
    if js.is_file():
        data = json.loads(js.read_text())
        data.setdefault("meta", {})["checkpoint"] = kept
        atomic_write_json(js, data)
    if md.is_file():
        text = md.read_text()
        head, sep, rest = text.partition("\n\n")
        atomic_write_text(md, f"{head}\n\n{line}\n{sep}{rest}" if sep else f"{text}\n{line}\n")
    return line


def checkpoint_out(args: argparse.Namespace) -> Path:
    return args.out or Path("eval") / Path(args.checkpoint).stem
