"""Run folders: what a training run writes, and how to rebuild its model afterwards.

A run folder holds:

* ``config.yaml``: the resolved :class:`~oodlab.config.RunConfig`;
* ``meta.json``: package and torch versions, git commit, device, seed, world size, benchmark,
  the pretrained weights' path and SHA-256 (``model.weights``);
* ``class_counts.json`` and ``lt_indices.npy`` (the exact long-tail subsample, when any);
* ``train_log.jsonl``: one JSON object per epoch (and per ``log_every`` steps);
* ``checkpoint.pt`` (+ ``checkpoint.prev.pt``, each with a ``.json`` hash record) while training;
* ``model.pt`` (final weights only) and ``model.json`` (what rebuilds the model: model and
  method configs, classes, input channels, class counts) when it has finished;
* ``train_summary.json``: final ID accuracy, time and throughput.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from oodlab._version import __version__
from oodlab.config import (
    MethodConfig,
    ModelConfig,
    RunConfig,
    from_dict,
    load_config,
    save_resolved,
    to_dict,
)
from oodlab.data.benchmarks import Benchmark
from oodlab.errors import CheckpointError, ConfigError
from oodlab.io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    safe_torch_load,
    sha256_file,
)
from oodlab.models import MODELS, attach_heads, load_pretrained
from oodlab.models.pretrained import state_dict_mismatch
from oodlab.train.recipes import METHODS, Recipe, build_recipe


def git_commit() -> str | None:
    """The commit of the source tree oodlab runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(device: torch.device, seed: int, world_size: int = 1) -> dict[str, Any]:
    """The head of every ``meta.json``: versions, git commit, device, world size and seed."""
    return {
        "oodlab_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "device": str(device),
        "world_size": world_size,
        "seed": seed,
    }


def write_run_files(
    run_dir: Path, config: RunConfig, benchmark: Benchmark, device: torch.device, world_size: int
) -> None:
    """The resolved config, provenance, class counts and long-tail indices of a run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(config, run_dir / "config.yaml")
    atomic_write_json(
        run_dir / "meta.json",
        {
            **provenance(device, config.train.seed, world_size),
            "benchmark": benchmark.name,
            "num_classes": benchmark.num_classes,
            "image_shape": list(benchmark.image_shape),
            "benchmark_info": benchmark.info,
            "model_weights": _weights_record(config.model.weights),
        },
    )
    atomic_write_json(run_dir / "class_counts.json", list(benchmark.class_counts))
    if benchmark.lt_indices is not None:
        indices = np.asarray(benchmark.lt_indices, dtype=np.int64)
        atomic_write(
            run_dir / "lt_indices.npy", lambda handle: np.save(handle, indices, allow_pickle=False)
        )


def _weights_record(weights: str | None) -> dict[str, str] | None:
    """The pretrained weights' path and SHA-256 (``None`` when training from scratch)."""
    if weights is None:
        return None
    return {"path": weights, "sha256": sha256_file(Path(weights).expanduser())}


RESUME_MAY_CHANGE = (
    "train.epochs",
    "train.device",
    "train.quiet",
    "train.tensorboard",
    "train.nonfinite",
    "data.data_root",
    "data.persistent_workers",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
)


def check_same_config(saved: RunConfig, config: RunConfig, run_dir: Path) -> None:
    """One line listing what differs when ``config`` is not the config ``run_dir`` started
    with; a resume may only extend the run, move it to another device or dataset folder."""

    def comparable(c: RunConfig) -> dict[str, Any]:
        data = to_dict(c)
        kind = METHODS.get(c.method.name).config_type
        if kind is not None:  # defaults filled in, so an option spelt out equals its default
            data["method"]["options"] = to_dict(from_dict(kind, c.method.options, where="method"))
        return {k: v for k, v in _flatten(data).items() if k not in RESUME_MAY_CHANGE}

    a, b = comparable(saved), comparable(config)
    diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a | b) if a.get(k) != b.get(k)]
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise ConfigError(
            f"{run_dir} holds a run of another config ({shown}); resume it with its config.yaml "
            f"(only {', '.join(RESUME_MAY_CHANGE)} may change), or pass another --run-dir"
        )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        return {prefix.rstrip("."): data}
    return {
        k: v for key, value in data.items() for k, v in _flatten(value, f"{prefix}{key}.").items()
    }


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config saved in a run folder."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a run folder (no config.yaml); pass a folder written by "
            "`oodlab train`"
        )
    return load_config(RunConfig, path)


def build_model(
    model: ModelConfig,
    method: MethodConfig,
    num_classes: int,
    in_channels: int,
    recipe: Recipe | None = None,
    pretrained: bool = False,
) -> nn.Module:
    """The untrained model of a run: the backbone with the extra heads its method declares.

    With ``pretrained``, the backbone first loads ``model.weights`` (when set; training does,
    a finished run's ``model.pt`` replaces everything anyway).
    """
    if recipe is None:
        recipe = build_recipe(method.name, method.options, [1] * num_classes)
    factory = MODELS.get(model.name).factory
    if model.mean is not None and len(model.mean) != in_channels:
        raise ConfigError(
            f"model.mean has {len(model.mean)} values for images of {in_channels} channel(s); "
            f"give one value per channel (model.std too)"
        )
    if model.std is not None and len(model.std) != in_channels:
        raise ConfigError(
            f"model.std has {len(model.std)} values for images of {in_channels} channel(s); "
            "give one value per channel"
        )
    try:
        backbone: nn.Module = factory(
            num_classes=recipe.num_outputs(num_classes), in_channels=in_channels, **model.options
        )
    except TypeError as exc:
        raise ConfigError(f"model.options of {model.name!r}: {exc}") from None
    if pretrained and model.weights is not None:
        load_pretrained(backbone, model.weights, model.name)
    with_heads = attach_heads(
        backbone,
        num_classes,
        heads=recipe.heads,
        classifier=recipe.classifier,
        zscore_sigma=recipe.zscore_sigma,
        mean=model.mean,
        std=model.std,
    )
    prepared = recipe.prepare_model(with_heads)
    # Read by the ImOOD ada_* scores (oodlab.eval.evaluate.build_score); not a buffer.
    object.__setattr__(prepared, "trained_logit_adjustment", recipe.logit_adjustment)
    return prepared


def load_weights(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``model.load_state_dict(state)``; a mismatch raises one line saying what differs."""
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(
            f"{source} does not fit the {type(model).__name__} model: tensors {problem}; "
            "was it saved from another architecture or class count?"
        )
    model.load_state_dict(state)


def save_final_model(
    run_dir: Path, model: nn.Module, config: RunConfig, benchmark: Benchmark
) -> None:
    """``model.pt`` (weights only) and ``model.json`` (what rebuilds the model, and the
    SHA-256 of ``model.pt``, checked on load)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    atomic_write_bytes(run_dir / "model.pt", data)
    atomic_write_json(
        run_dir / "model.json",
        {
            "model": to_dict(config.model),
            "method": to_dict(config.method),
            "num_classes": benchmark.num_classes,
            "in_channels": benchmark.image_shape[0],
            "image_shape": list(benchmark.image_shape),
            "class_counts": list(benchmark.class_counts),
            "model_sha256": hashlib.sha256(data).hexdigest(),
        },
    )


def check_model_record(weights: Path, spec: Mapping[str, Any]) -> None:
    """One line if ``model.pt`` does not match the SHA-256 in ``model.json``; a one-line
    warning if there is no record (a run written before oodlab kept one)."""
    expected = spec.get("model_sha256")
    if expected is None:
        warnings.warn(
            f"{weights} has no SHA-256 record in model.json (a run written by an older "
            "oodlab); loaded without an integrity check",
            stacklevel=3,
        )
        return
    if sha256_file(weights) != expected:
        raise CheckpointError(
            f"{weights} is corrupted or was replaced: its SHA-256 does not match the record in "
            "model.json; it was not loaded (train the run again, or restore the file)"
        )


def load_model_from_run(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a finished run (with its extra heads), in eval mode on ``device``."""
    run_dir = Path(run_dir)
    weights, spec_path = run_dir / "model.pt", run_dir / "model.json"
    if not weights.is_file() or not spec_path.is_file():
        if not (run_dir / "config.yaml").is_file():
            raise CheckpointError(
                f"{run_dir} is not a run folder (no config.yaml, no model.pt); "
                "pass a folder written by `oodlab train`"
            )
        raise CheckpointError(
            f"{run_dir} has no model.pt/model.json: the run has not finished; resume it "
            "with `oodlab train CONFIG --run-dir DIR --resume`"
        )
    spec = read_json(spec_path, "model record")
    try:
        model = build_model(
            from_dict(ModelConfig, spec["model"], where="model.json model"),
            from_dict(MethodConfig, spec["method"], where="model.json method"),
            int(spec["num_classes"]),
            int(spec["in_channels"]),
            build_recipe(spec["method"]["name"], spec["method"]["options"], spec["class_counts"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise CheckpointError(
            f"{spec_path} is not a model record written by `oodlab train` (missing or "
            f"malformed {exc}); train the run again"
        ) from None
    check_model_record(weights, spec)
    load_weights(model, safe_torch_load(weights), str(weights))
    return model.to(device).eval()


def default_scores_of_run(config: RunConfig) -> list[str]:
    """The score the run's method is evaluated with, plus MSP and energy."""
    entry = METHODS.get(config.method.name)
    own = entry.extra.get("default_score", "msp")
    if callable(own):  # the score depends on the options (ImOOD's detector)
        kind = entry.config_type
        own = own(from_dict(kind, config.method.options, where="method.options") if kind else None)
    return list(dict.fromkeys([own, "msp", "energy"]))


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``train_log.jsonl`` (an empty list if there is none)."""
    path = run_dir / "train_log.jsonl"
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            if number == len(lines):  # cut by a kill mid-append: that epoch was not saved
                break
            raise CheckpointError(
                f"{path}:{number} is not a JSON line (the log is corrupted); delete the bad "
                "line, or the file to start the log afresh"
            ) from None
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}:{number} is not a JSON object; delete that line")
        rows.append(row)
    return rows


def _log_line(row: dict[str, Any]) -> str:
    clean = {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
    return json.dumps(clean) + "\n"


def append_log(run_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append rows to ``train_log.jsonl`` (non-finite floats are written as null)."""
    with open(run_dir / "train_log.jsonl", "a") as handle:
        handle.writelines(_log_line(row) for row in rows)


def rewrite_log(run_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Replace ``train_log.jsonl`` by ``rows`` in one atomic write (a resume drops the rows
    of the epochs it replays)."""
    atomic_write_text(run_dir / "train_log.jsonl", "".join(_log_line(row) for row in rows))


def refuse_existing_run(run_dir: Path, files: Sequence[str]) -> None:
    """One line when ``run_dir`` already holds one of a run's ``files`` (and no resume asked)."""
    if any((run_dir / name).exists() for name in files):
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it, or another --run-dir"
        )
