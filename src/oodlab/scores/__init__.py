"""Post-hoc OOD scores, one file each; every score returns higher = more OOD.

Importing this package registers every score in :data:`SCORES`.
"""

from oodlab.scores import (
    ash,
    bin_disc,
    energy,
    gradnorm,
    imood_prior,
    iodin,
    kl_matching,
    knn,
    mahalanobis,
    mahalanobis_ensemble,
    max_logit,
    mcm,
    mos,
    msp,
    nnguide,
    odin,
    patt_calibration,
    react,
    relation,
    scale,
    vim,
)
from oodlab.scores.base import SCORES, InputGradientScore, Score, register_score

__all__ = ["SCORES", "InputGradientScore", "Score", "register_score"]

_modules = [
    ash,
    bin_disc,
    energy,
    gradnorm,
    imood_prior,
    iodin,
    kl_matching,
    knn,
    mahalanobis,
    mahalanobis_ensemble,
    max_logit,
    mcm,
    mos,
    msp,
    nnguide,
    odin,
    patt_calibration,
    react,
    relation,
    scale,
    vim,
]
