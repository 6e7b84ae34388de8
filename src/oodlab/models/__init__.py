"""Models: backbones exposing ``features(x)`` / ``head(z)``, and extra heads.

Importing this package registers every model in :data:`MODELS`.
"""

from oodlab.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register

__all__ = ["MODELS", "register_model"]
