"""The loss registry: every loss file registers its ``nn.Module`` here with ``@register_loss``."""

from oodlab.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register
