"""Post-hoc OOD scores, one file each; every score returns higher = more OOD.

Importing this package registers every score in :data:`SCORES`.
"""

from oodlab.scores import energy, max_logit, msp
from oodlab.scores.base import SCORES, InputGradientScore, Score, register_score

__all__ = ["SCORES", "InputGradientScore", "Score", "register_score"]

_modules = [energy, max_logit, msp]
