"""``oodlab train CONFIG [--set key=value ...] [--run-dir DIR] [--resume]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
    p.add_argument("--run-dir", type=Path, help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from oodlab.train.loop import train

    config = load_config(RunConfig, args.config, args.overrides)
    run_dir = args.run_dir or Path("runs") / args.config.stem
    result = train(config, run_dir, resume=args.resume)
    print(
        f"trained {result.epochs} epochs in {result.seconds:.1f} s "
        f"({result.images_per_second:.0f} images/s); ID accuracy {100 * result.final_accuracy:.2f}%"
    )
    print(f"run folder: {run_dir}  (evaluate: oodlab eval {run_dir})")
    return 0
