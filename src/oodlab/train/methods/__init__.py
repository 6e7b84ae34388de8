"""Training methods: one recipe per file, registered in :data:`oodlab.train.recipes.METHODS`.

Add a method as ``methods/<name>.py`` (a :class:`~oodlab.train.recipes.Recipe` subclass
decorated with ``@register_method``) and import it here.
"""

from oodlab.train.methods import bin_disc, ce, energy_oe, imood, oe, pascl, patt

_modules = [bin_disc, ce, energy_oe, imood, oe, pascl, patt]
