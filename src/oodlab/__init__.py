"""oodlab: out-of-distribution detection with long-tailed data, outlier synthesis and large
label spaces. Every score in oodlab returns higher = more OOD."""

from oodlab._version import __version__
from oodlab.detector import Detector
from oodlab.errors import OodlabError
from oodlab.eval import evaluate
from oodlab.scores import SCORES, Score
from oodlab.types import Outputs

__all__ = ["SCORES", "Detector", "OodlabError", "Outputs", "Score", "__version__", "evaluate"]
