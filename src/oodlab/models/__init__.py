"""Models: backbones exposing ``features(x)`` / ``head(z)``, and extra heads.

Importing this package registers every model in :data:`MODELS`.
"""

from oodlab.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register

from oodlab.models import resnet_cifar, small_cnn  # noqa: E402  (registry first)

__all__ = ["MODELS", "register_model"]

_modules = [resnet_cifar, small_cnn]
