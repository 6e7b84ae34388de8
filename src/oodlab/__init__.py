"""oodlab: out-of-distribution detection with long-tailed data, outlier synthesis and large
label spaces. Every score in oodlab returns higher = more OOD."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("oodlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from oodlab.detector import Detector
from oodlab.errors import OodlabError
from oodlab.eval import evaluate
from oodlab.scores import SCORES, Score
from oodlab.types import Outputs

__all__ = ["SCORES", "Detector", "OodlabError", "Outputs", "Score", "__version__", "evaluate"]
