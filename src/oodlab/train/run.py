"""Run folders: what a training run writes, and how to rebuild its model afterwards.

A run folder holds ``config.yaml`` (the resolved :class:`~oodlab.config.RunConfig`),
``meta.json`` (package and torch versions, git commit, device, seed, world size, input
shape), ``class_counts.json``, ``lt_indices.npy`` (the exact long-tail subsample),
``train_log.jsonl``, ``checkpoint.pt`` (+ ``checkpoint.prev.pt``) while training, and
``model.pt`` (final weights) when it has finished.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import oodlab
from oodlab.config import RunConfig, load_config, save_resolved
from oodlab.data.benchmarks import Benchmark
from oodlab.errors import CheckpointError
from oodlab.io import atomic_write, atomic_write_json, safe_torch_load
from oodlab.models import MODELS


def git_commit() -> str | None:
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


def write_run_files(
    run_dir: Path, config: RunConfig, benchmark: Benchmark, device: torch.device, world_size: int
) -> None:
    """The resolved config, provenance, class counts and long-tail indices of a run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(config, run_dir / "config.yaml")
    atomic_write_json(
        run_dir / "meta.json",
        {
            "oodlab_version": oodlab.__version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "git_commit": git_commit(),
            "device": str(device),
            "world_size": world_size,
            "seed": config.train.seed,
            "benchmark": benchmark.name,
            "num_classes": benchmark.num_classes,
            "image_shape": list(benchmark.image_shape),
            "benchmark_info": benchmark.info,
        },
    )
    atomic_write_json(run_dir / "class_counts.json", benchmark.class_counts)
    if benchmark.lt_indices is not None:
        indices = np.asarray(benchmark.lt_indices, dtype=np.int64)
        atomic_write(
            run_dir / "lt_indices.npy", lambda handle: np.save(handle, indices, allow_pickle=False)
        )


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config saved in a run folder."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a run folder (no config.yaml); "
            "pass a folder written by `oodlab train`"
        )
    return load_config(RunConfig, path)


def build_model(config: RunConfig, num_classes: int, in_channels: int) -> nn.Module:
    """The run's model with the extra heads its method attaches, untrained."""
    from oodlab.train.recipes import build_recipe

    model: nn.Module = MODELS.create(
        config.model.name, num_classes=num_classes, in_channels=in_channels, **config.model.options
    )
    recipe = build_recipe(config.method.name, config.method.options, [1] * num_classes)
    return recipe.prepare_model(model)


def load_model_from_run(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a finished run, in eval mode."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    weights = run_dir / "model.pt"
    if not weights.is_file():
        raise CheckpointError(
            f"{run_dir} has no model.pt: the run has not finished; "
            "resume it with `oodlab train --resume`"
        )
    meta = json.loads((run_dir / "meta.json").read_text())
    model = build_model(config, meta["num_classes"], meta["image_shape"][0])
    state = safe_torch_load(weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{weights} does not fit the model of {run_dir}/config.yaml: {first}"
        ) from None
    return model.to(device).eval()


def default_scores_of_run(config: RunConfig) -> list[str]:
    """The score the run's method is evaluated with, plus MSP and energy."""
    from oodlab.train.recipes import METHODS

    entry = METHODS.get(config.method.name)
    own = entry.extra.get("default_score", "msp")
    return list(dict.fromkeys([own, "msp", "energy"]))


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "train_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
