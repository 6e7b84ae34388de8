"""Models: backbones exposing ``features(x)`` / ``head(z)``, and extra heads.

Importing this package registers every model in :data:`MODELS`.
"""

from oodlab.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register

from oodlab.models import heads, resnet_cifar, small_cnn, torchvision_resnet  # noqa: E402

__all__ = ["MODELS", "register_model"]

_modules = [heads, resnet_cifar, small_cnn, torchvision_resnet]
