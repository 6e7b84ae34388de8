"""Evaluation: metrics, cached extraction, the evaluate entry point and reports.

Importing this package registers the protocol presets (:mod:`oodlab.eval.protocol_presets`).
"""

from oodlab.eval import protocol_presets  # registers the presets in PROTOCOLS
from oodlab.eval.evaluate import EvalResult, ScoreResult
from oodlab.eval.extract import ExtractConfig, extract
from oodlab.eval.front import evaluate  # the pipeline's evaluate, plus benchmark=NAME
from oodlab.eval.tuning import TuneConfig

__all__ = [
    "EvalResult",
    "ExtractConfig",
    "ScoreResult",
    "TuneConfig",
    "evaluate",
    "extract",
    "protocol_presets",
]
