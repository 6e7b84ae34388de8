"""How a training method plugs into the one loop: a recipe.

A recipe owns the method's loss and everything around it that is specific to the method:

* ``uses_aux``: whether each step also draws a batch of auxiliary outliers;
* ``loss(model, batch) -> (loss, logs)``: the step's objective. It receives the ID batch
  (``batch.x``, ``batch.y``) and the outliers (``batch.x_aux``, or ``None``) and should run
  **one** concatenated forward pass over ID and outliers (:func:`forward_concat`) so that
  BatchNorm statistics are shared, as the papers do. Methods that synthesise outliers from
  the ID batch (ASCOOD) do it here, before that forward; methods with running statistics
  (PATT's class means, NPOS's queues) keep them in the recipe and expose them through
  ``state_dict``/``load_state_dict`` so checkpoints carry them;
* ``prepare_model(model)``: attach the extra heads the method needs (projection, binary
  discriminator, ...) before the optimiser is built;
* ``on_epoch_start(epoch, num_epochs)`` and ``on_train_end(model, context)`` hooks (PASCL's
  second stage and PATT's calibration run after training).

Recipes are registered in :data:`METHODS` with their own hyper-parameter dataclass
(``config_type``); ``method.options`` of the run config is validated against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from oodlab.config import from_dict
from oodlab.errors import DataError
from oodlab.losses.ce import CrossEntropy
from oodlab.losses.oe import outlier_exposure
from oodlab.registry import Registry

METHODS: Registry = Registry("method")
register_method = METHODS.register


@dataclass
class Batch:
    """One training step's data on the training device."""

    x: Tensor
    y: Tensor
    x_aux: Tensor | None = None


class Recipe:
    """Base recipe: plain cross-entropy, no auxiliary outliers, no extra state."""

    uses_aux = False

    def __init__(self, options: Any, class_counts: list[int]) -> None:
        self.options = options
        self.class_counts = class_counts

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The step's loss and its logged terms; ``net`` is a (DDP-wrapped) :class:`TrainView`."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Called before each epoch (0-based) of ``num_epochs``."""

    def on_train_end(self, model: nn.Module, context: dict[str, Any]) -> None:
        """Called once after the last epoch, before the final model is saved."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    @property
    def prior(self) -> Tensor:
        counts = torch.tensor(self.class_counts, dtype=torch.float64)
        return counts / counts.sum()


class TrainView(nn.Module):
    """``forward(x) -> (features, logits)`` of a model: what the loop wraps in DDP, so that a
    recipe's one forward pass goes through DistributedDataParallel's gradient hooks."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.model.features(x)  # type: ignore[operator]
        return z, self.model.head(z)  # type: ignore[operator]


def forward_concat(net: nn.Module, *parts: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """One forward pass of ``net`` (a :class:`TrainView`, possibly DDP-wrapped) over the
    concatenated ``parts``; returns per-part lists of features and of logits."""
    sizes = [len(p) for p in parts]
    z, logits = net(torch.cat(parts))
    return list(z.split(sizes)), list(logits.split(sizes))


def build_recipe(name: str, options: dict[str, Any], class_counts: list[int]) -> Recipe:
    """The recipe ``name`` with ``options`` validated against its config dataclass."""
    entry = METHODS.get(name)
    config = (
        from_dict(entry.config_type, options, where=f"method.options ({name})")
        if entry.config_type
        else None
    )
    recipe: Recipe = entry.factory(config, class_counts)
    return recipe


@dataclass(frozen=True)
class CEOptions:
    """Cross-entropy, with optional logit adjustment ``τ`` (Menon et al. 2021)."""

    tau: float = 0.0


@register_method(
    "ce",
    config_type=CEOptions,
    paper="cross-entropy baseline (+ logit adjustment, arXiv:2007.07314)",
)
class CERecipe(Recipe):
    """Plain (or logit-adjusted) cross-entropy on the ID batch."""

    def __init__(self, options: CEOptions, class_counts: list[int]) -> None:
        super().__init__(options, class_counts)
        self.criterion = CrossEntropy(self.prior.float(), options.tau)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        _, (logits,) = forward_concat(net, batch.x)
        loss = self.criterion.to(logits.device)(logits, batch.y)
        return loss, {"ce": float(loss.detach())}


@dataclass(frozen=True)
class OEOptions:
    """Outlier Exposure: ``λ`` (weight, PASCL/ImOOD 0.5) and logit adjustment ``τ`` of the CE."""

    weight: float = 0.5
    tau: float = 0.0


@register_method("oe", config_type=OEOptions, paper="Hendrycks et al., ICLR 2019, arXiv:1812.04606")
class OERecipe(Recipe):
    """``CE(ID) + λ·OE(outliers)`` with one concatenated forward pass (shared BatchNorm)."""

    uses_aux = True

    def __init__(self, options: OEOptions, class_counts: list[int]) -> None:
        super().__init__(options, class_counts)
        self.criterion = CrossEntropy(self.prior.float(), options.tau)

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        if batch.x_aux is None:
            raise DataError("the oe method needs a batch of auxiliary outliers")
        _, (id_logits, aux_logits) = forward_concat(net, batch.x, batch.x_aux)
        ce = self.criterion.to(id_logits.device)(id_logits, batch.y)
        oe = outlier_exposure(aux_logits)
        loss = ce + self.options.weight * oe
        return loss, {"ce": float(ce.detach()), "oe": float(oe.detach())}
