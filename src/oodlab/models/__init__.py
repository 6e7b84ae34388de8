"""Models: backbones exposing ``features(x)`` / ``head(z)``, extra heads, released checkpoints.

Importing this package registers every model in :data:`MODELS` and every head kind in
:data:`~oodlab.models.heads.HEADS`.
"""

from oodlab.models import (
    bit,
    clip_tail,
    feature_tail,
    heads,
    released,
    resnet_cifar,
    small_cnn,
    torchvision_resnet,
)
from oodlab.models.base import MODELS, register_model
from oodlab.models.heads import HEADS, WithHeads, attach_heads
from oodlab.models.normalization import input_normalization
from oodlab.models.pretrained import load_pretrained
from oodlab.models.released import load_released_state_dict

__all__ = [
    "HEADS",
    "MODELS",
    "WithHeads",
    "attach_heads",
    "input_normalization",
    "load_pretrained",
    "load_released_state_dict",
    "register_model",
]

_modules = [
    bit,
    clip_tail,
    feature_tail,
    heads,
    released,
    resnet_cifar,
    small_cnn,
    torchvision_resnet,
]
