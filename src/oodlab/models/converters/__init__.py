"""Released checkpoint formats: each one renames an official state dict onto an oodlab model.

One file per family of released layouts (``openood.py``: OpenOOD v1.5 ResNet-18 32×32 /
224×224, torchvision ResNets and ASCOOD's net; ``npos.py`` (from scratch) and
``npos_clip.py`` (the CLIP-B/16 fine-tune); ``mos.py``: BiT group / flat
fine-tunes; ``long_tailed.py``: PASCL, ImOOD, PATT). A format registers in :data:`FORMATS`
with a ``matches(keys)`` test (the share of the checkpoint's keys it knows) and a
``convert(state, options)`` that returns a :class:`Converted`: which oodlab model to build,
its heads, the state dict under oodlab's names, the leftover tensors, the input
normalisation its authors trained with, and the scores its paper evaluates with.

:func:`load_checkpoint` reads a file, picks the format (given, or detected from the keys),
builds the model and loads it strictly: a mismatch names the keys.
"""

from oodlab.models.converters import long_tailed, mos, npos, npos_clip, openood
from oodlab.models.converters.base import (
    FORMATS,
    Converted,
    LoadedCheckpoint,
    detect_format,
    load_checkpoint,
    register_format,
)

__all__ = [
    "FORMATS",
    "Converted",
    "LoadedCheckpoint",
    "detect_format",
    "load_checkpoint",
    "register_format",
]
_modules = [long_tailed, mos, npos, npos_clip, openood]
