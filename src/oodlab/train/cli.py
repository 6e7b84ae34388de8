"""``oodlab train CONFIG [--set key=value ...] [--run-dir DIR] [--resume]``.

A config with ``method.name: npos_features`` trains on embedding files, not images: it runs
:func:`oodlab.train.methods.npos_features.train_on_features` (which also scores with MCM)
instead of the image loop, into the same kind of run folder (config, meta, train log, a
checkpoint after every epoch), and ``--resume`` continues it the same way.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from oodlab.argtypes import folder
from oodlab.config import RunConfig, load_config


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a method (one flat YAML config per experiment, see configs/)",
        description="Train with the one loop of oodlab. Multi-GPU / multi-node: launch with "
        "`torchrun --nproc_per_node=N -m oodlab.cli train CONFIG`.",
    )
    p.add_argument("config", type=Path, help="YAML run config (data, model, train, method)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config value, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument("--run-dir", type=folder, help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from oodlab.train.loop import train

    config = load_config(RunConfig, args.config, args.overrides)
    run_dir = args.run_dir or Path("runs") / args.config.stem
    if config.method.name == "npos_features":
        return _train_on_features(config, run_dir, args.resume)
    result = train(config, run_dir, resume=args.resume)
    if not result.is_main:  # under torchrun only rank 0 reports
        return 0
    if math.isfinite(result.images_per_second):
        done = f"trained {result.epochs} epochs in {result.seconds:.1f} s "
        done += f"({result.images_per_second:.0f} images/s)"
    else:  # a resumed run that had already finished: no step was taken
        done = f"the run had already finished its {result.epochs} epochs; nothing to train"
    print(f"{done}; ID accuracy {100 * result.final_accuracy:.2f}%")
    print(f"run folder: {run_dir}  (evaluate: oodlab eval {run_dir})")
    return 0


def _train_on_features(config: RunConfig, run_dir: Path, resume: bool) -> int:
    from oodlab.train.methods.npos_features import finished_results, train_on_features

    if resume and finished_results(config, run_dir) is not None:
        print(
            f"{run_dir} has already finished its {config.train.epochs} epochs; nothing to do "
            f"(results: {run_dir / 'results.json'})"
        )
        return 0
    results = train_on_features(config, run_dir, resume=resume)
    summary = [f"trained {config.train.epochs} epochs on embedding files"]
    if "id_accuracy" in results:
        summary.append(f"ID accuracy {100 * results['id_accuracy']:.2f}%")
    if "mean" in results:
        summary.append(f"mean MCM AUROC {100 * results['mean']['auroc']:.2f}%")
    print("; ".join(summary))
    print(f"run folder: {run_dir}  (results: {run_dir / 'results.json'})")
    return 0
