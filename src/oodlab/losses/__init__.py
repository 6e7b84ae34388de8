"""Training losses, one file per paper; ``nn.Module``s with hyper-parameters in the constructor.

Importing this package registers every loss in :data:`LOSSES`.
"""

from oodlab.losses import (
    ascood,
    bindisc,
    ce,
    energy_oe,
    imood,
    mos,
    npos,
    oe,
    pascl,
    patt,
)
from oodlab.losses.base import LOSSES, register_loss

__all__ = ["LOSSES", "register_loss"]

_modules = [ascood, bindisc, ce, energy_oe, imood, mos, npos, oe, pascl, patt]
