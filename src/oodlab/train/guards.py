"""Checks a training run makes before it builds or writes anything, and under its folder lock.

Each problem is one line (:class:`~oodlab.errors.ConfigError`): options a benchmark, model or
method does not take or of the wrong type, a missing weights file, a device this machine does
not have, a folder that already holds a run (or, with ``--resume``, holds none, one of
another config, one past the config's epochs, or one whose training files changed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from oodlab.config import RunConfig, from_dict
from oodlab.data.benchmarks import Benchmark
from oodlab.errors import ConfigError, DataError
from oodlab.models import MODELS
from oodlab.options import check_call_options
from oodlab.train.recipes import METHODS, build_recipe
from oodlab.train.run import check_same_config, load_run_config, refuse_existing_run

CHECKPOINTS = ("checkpoint.pt", "checkpoint.prev.pt", "checkpoint.next.pt")


def check_run_config(config: RunConfig) -> None:
    """What can be checked of ``config`` before anything is built or written: the benchmark's,
    the model's and the method's options against their signatures, the weights file and the
    device; each problem is one line."""
    from oodlab.data import BENCHMARKS
    from oodlab.distributed import check_device_available

    name = config.data.benchmark
    check_call_options(
        BENCHMARKS.get(name).factory,
        config.data.options,
        f"data.options of benchmark {name!r}",
        skip=("data_root", "seed"),
    )
    model = config.model.name
    check_call_options(
        MODELS.get(model).factory,
        config.model.options,
        f"model.options of {model!r}",
        skip=("num_classes", "in_channels"),
    )
    kind = METHODS.get(config.method.name).config_type
    if kind is not None:
        from_dict(kind, config.method.options, where="method.options")
    weights = config.model.weights
    if weights is not None and not Path(weights).expanduser().is_file():
        raise ConfigError(f"model.weights {weights} is not a file; pass a local weights file")
    check_device_available(config.train.device)


def prepare_run_dir(run_dir: Path, config: RunConfig, resume: bool, files: Sequence[str]) -> None:
    """Under the folder's lock (which drops the temporaries of an interrupted write): refuse a
    folder that holds a run (without ``resume``), or, with ``resume``, one that holds none or
    holds a run of another config."""
    if not resume:
        refuse_existing_run(run_dir, files)
        return
    if not (run_dir / "config.yaml").is_file():
        if not any((run_dir / name).is_file() for name in CHECKPOINTS):
            raise ConfigError(
                f"--resume: {run_dir} holds no run to continue (no config.yaml, no checkpoint); "
                "drop --resume to start a new run there, or pass the folder of the run"
            )
        return
    check_same_config(load_run_config(run_dir), config, run_dir)


def finished_epochs(config: RunConfig, run_dir: Path) -> int | None:
    """The epochs of the finished run of ``config`` in ``run_dir``; ``None`` when there is none
    or it has fewer epochs than ``config`` (a resume then extends it).

    Raises:
        ConfigError: ``run_dir`` holds a run of another config (:func:`check_same_config`).
    """
    summary = run_dir / "train_summary.json"
    if not (summary.is_file() and (run_dir / "model.pt").is_file()):
        return None
    check_same_config(load_run_config(run_dir), config, run_dir)
    counts = json.loads((run_dir / "class_counts.json").read_text())
    recipe = build_recipe(config.method.name, config.method.options, counts)
    total = sum(stage.train.epochs for stage in recipe.stages(config))
    done = int(json.loads(summary.read_text())["epochs"])
    return done if done == total else None


def check_resumable(
    run_dir: Path, benchmark: Benchmark, done: tuple[int, int], epochs: Sequence[int]
) -> None:
    """A checkpoint at (stage, epoch) ``done`` can continue under stages of ``epochs``, on the
    very training files it started with (a benchmark may record their SHA-256 in
    ``info["training_files"]``; the run's meta.json holds the first ones).

    Raises:
        ConfigError: the checkpoint is past the config's epochs.
        DataError: a recorded training file changed since the run started.
    """
    stage, epoch = done
    if stage < len(epochs) and epoch > epochs[stage]:
        raise ConfigError(
            f"{run_dir} has trained {epoch} epochs, past train.epochs={epochs[stage]}; set "
            f"train.epochs >= {epoch}, or pass another --run-dir"
        )
    meta = run_dir / "meta.json"
    old_info = json.loads(meta.read_text()).get("benchmark_info", {}) if meta.is_file() else {}
    saved = old_info.get("training_files", {}) if isinstance(old_info, dict) else {}
    for key, record in benchmark.info.get("training_files", {}).items():
        old = saved.get(key, {}).get("sha256")
        if old is not None and old != record["sha256"]:
            raise DataError(
                f"data.options.{key} file {record['path']} changed since the run in {run_dir} "
                f"started (SHA-256 {old[:12]}..., now {record['sha256'][:12]}...); restore it, "
                "or pass another --run-dir"
            )
