"""Training: the one loop, method recipes, checkpoints and run folders.

``train(config, run_dir, resume=False)`` runs a :class:`~oodlab.config.RunConfig`;
``load_model_from_run(run_dir)`` and ``load_run_config(run_dir)`` read a finished run back.
Methods plug in as recipes (:mod:`oodlab.train.recipes`, ``oodlab list methods``), one file each
in :mod:`oodlab.train.methods`; importing this package registers them.
"""

from oodlab.train import methods  # registers every recipe in METHODS
from oodlab.train.loop import TrainResult, train
from oodlab.train.recipes import METHODS, Batch, Recipe, Stage, forward_concat, register_method
from oodlab.train.run import load_model_from_run, load_run_config

__all__ = [
    "METHODS",
    "Batch",
    "Recipe",
    "Stage",
    "TrainResult",
    "forward_concat",
    "load_model_from_run",
    "load_run_config",
    "methods",
    "register_method",
    "train",
]
