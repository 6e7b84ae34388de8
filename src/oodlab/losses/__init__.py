"""Training losses, one file per paper; ``nn.Module``s with hyper-parameters in the constructor.

Importing this package registers every loss in :data:`LOSSES`.
"""

from oodlab.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register

from oodlab.losses import (  # noqa: E402  (the registry must exist first)
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

__all__ = ["LOSSES", "register_loss"]

_modules = [ascood, bindisc, ce, energy_oe, imood, mos, npos, oe, pascl, patt]
