"""``oodlab train CONFIG [--set key=value ...] [--run-dir DIR] [--resume]``.

Every method trains with the one loop (:func:`oodlab.train.loop.train`), images or stored
embeddings alike (``data.benchmark: embeddings``); a recipe that evaluates itself at the end
(``npos_features``: MCM) leaves a ``results.json`` whose mean AUROC is printed.
"""

from __future__ import annotations

import argparse
import json
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
    from oodlab.train.guards import finished_epochs
    from oodlab.train.loop import train

    config = load_config(RunConfig, args.config, args.overrides)
    run_dir = args.run_dir or Path("runs") / args.config.stem
    finished = finished_epochs(config, run_dir) if args.resume else None
    if finished is not None:
        print(f"{run_dir} has already finished its {finished} epochs; nothing to do")
        return 0
    result = train(config, run_dir, resume=args.resume)
    if not result.is_main:  # under torchrun only rank 0 reports
        return 0
    if math.isfinite(result.images_per_second):
        done = f"trained {result.epochs} epochs in {result.seconds:.1f} s "
        done += f"({result.images_per_second:.0f} images/s)"
    else:  # a resumed run that had already finished: no step was taken
        done = f"the run had already finished its {result.epochs} epochs; nothing to train"
    print(f"{done}; ID accuracy {100 * result.final_accuracy:.2f}%")
    own = run_dir / "results.json"  # written by a recipe that evaluates itself at the end
    if own.is_file():
        results = json.loads(own.read_text())
        if "mean" in results:
            score = str(results.get("score", "")).upper()
            print(f"mean {score} AUROC {100 * results['mean']['auroc']:.2f}%")
    print(f"run folder: {run_dir}  (evaluate: oodlab eval {run_dir})")
    return 0
