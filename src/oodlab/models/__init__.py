"""Models: backbones exposing ``features(x)`` / ``head(z)``, extra heads, released checkpoints.

Importing this package registers every model in :data:`MODELS` and every head kind in
:data:`~oodlab.models.heads.HEADS`.
"""

from collections.abc import Callable
from typing import Any

from oodlab.registry import Registry

MODELS: Registry = Registry("model")
register_model: Callable[..., Callable[[Any], Any]] = MODELS.register

from oodlab.models import (  # noqa: E402  (the registry must exist first)
    bit,
    heads,
    released,
    resnet_cifar,
    small_cnn,
    torchvision_resnet,
)
from oodlab.models.heads import HEADS, WithHeads, attach_heads  # noqa: E402
from oodlab.models.normalization import input_normalization  # noqa: E402
from oodlab.models.pretrained import load_pretrained  # noqa: E402
from oodlab.models.released import load_released_state_dict  # noqa: E402

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

_modules = [bit, heads, released, resnet_cifar, small_cnn, torchvision_resnet]
