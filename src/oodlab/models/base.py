"""The model registry: every backbone file registers its builders here with ``@register_model``."""

from collections.abc import Callable
from typing import Any

from oodlab.registry import Registry

MODELS: Registry = Registry("model")
register_model: Callable[..., Callable[[Any], Any]] = MODELS.register
