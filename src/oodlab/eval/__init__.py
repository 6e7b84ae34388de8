"""Evaluation: metrics, cached extraction, the evaluate entry point and reports."""

from oodlab.eval.evaluate import EvalResult, ScoreResult, TuneConfig, evaluate
from oodlab.eval.extract import ExtractConfig, extract

__all__ = ["EvalResult", "ExtractConfig", "ScoreResult", "TuneConfig", "evaluate", "extract"]
