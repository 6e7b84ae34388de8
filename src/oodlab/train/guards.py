"""Checks a training run makes before it builds or writes anything, and under its folder lock.

Each problem is one line (:class:`~oodlab.errors.ConfigError`): options a benchmark, model or
method does not take or of the wrong type, a missing weights file, a device this machine does
not have, a folder that already holds a run (or, with ``--resume``, holds none, or one of
another config).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from oodlab.config import RunConfig, from_dict
from oodlab.errors import ConfigError
from oodlab.models import MODELS
from oodlab.options import check_call_options
from oodlab.train.recipes import METHODS
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
