"""Training methods: one recipe per file, registered in :data:`oodlab.train.recipes.METHODS`.

Add a method as ``methods/<name>.py`` (a :class:`~oodlab.train.recipes.Recipe` subclass
decorated with ``@register_method``) and import it here.
"""

from oodlab.train.methods import (
    ascood,
    bin_disc,
    ce,
    energy_oe,
    imood,
    mos,
    npos,
    npos_features,
    oe,
    pascl,
    patt,
)

_modules = [ascood, bin_disc, ce, energy_oe, imood, mos, npos, npos_features, oe, pascl, patt]
