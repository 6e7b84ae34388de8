"""Shared types: the model protocol and the cached outputs that every score consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from oodlab.errors import DataError

HEAD_INPUT = "head_input"
"""Key in :attr:`Outputs.extras` of the linear head's input, when it differs from the features."""


@runtime_checkable
class FeatureClassifier(Protocol):
    """What oodlab expects of a classifier (timm's ``forward_features`` / ``forward_head`` split).

    ``features(x)`` returns the penultimate (pooled) features ``(N, D)`` and
    ``head(z)`` the class logits ``(N, C)``; ``model(x) == head(features(x))``.
    Optional extra methods a model may define:

    * ``linear_head() -> nn.Linear``: the final affine map of ``head``, when ``head`` is
      not itself an ``nn.Linear`` (it gives scores W and b);
    * ``head_input(z) -> Tensor | None``: the input of that linear layer when ``head``
      transforms the features first (ASCOOD's z-score: ``head(z) = W·zscore(z) + b``), else
      ``None``. Evaluation caches it as ``extras["head_input"]``; the scores that rebuild
      logits as ``W·x + b`` use it, feature-space scores keep ``features`` (see
      :func:`oodlab.scores.base.head_features`);
    * ``extra_outputs(z) -> dict[str, Tensor]``: extra per-sample head outputs
      (e.g. ``"bin_logit"`` of a binary discriminator) cached beside the logits;
    * ``intermediate_features(x) -> list[Tensor]``: spatially pooled activations of
      several layers, for the multi-layer Mahalanobis score.
    """

    def features(self, x: Tensor) -> Tensor: ...

    def head(self, z: Tensor) -> Tensor: ...


def linear_head(model: nn.Module) -> nn.Linear | None:
    """The final affine layer of ``model`` (``W z + b``), or ``None`` if it has none."""
    getter = getattr(model, "linear_head", None)
    if callable(getter):
        layer = getter()
        return layer if isinstance(layer, nn.Linear) else None
    head = getattr(model, "head", None)
    return head if isinstance(head, nn.Linear) else None


@dataclass(frozen=True)
class Outputs:
    """Everything one forward pass over a dataset produced, as CPU tensors.

    Attributes:
        logits: ``(N, C)`` class logits.
        features: ``(N, D)`` penultimate features (the input of the linear head, unless
            ``extras[HEAD_INPUT]`` holds a transformed one).
        labels: ``(N,)`` integer labels; ``-1`` where unknown (OOD sets).
        extras: other per-sample head outputs, each with first dimension ``N``; under
            :data:`HEAD_INPUT` the classifier's input where it is not ``features``.
        head_weight: ``(C, D)`` weight of the linear head, if the model has one.
        head_bias: ``(C,)`` bias of the linear head, if any.
    """

    logits: Tensor
    features: Tensor
    labels: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)
    head_weight: Tensor | None = None
    head_bias: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.logits.shape[0]
        if self.logits.ndim != 2:
            raise DataError(f"logits must be (N, C), got shape {tuple(self.logits.shape)}")
        if self.features.ndim != 2 or self.features.shape[0] != n:
            raise DataError(
                f"features must be (N, D) with N={n} like the logits, "
                f"got shape {tuple(self.features.shape)}"
            )
        if self.labels.shape != (n,):
            raise DataError(f"labels must be ({n},), got shape {tuple(self.labels.shape)}")
        for name, value in self.extras.items():
            if value.shape[0] != n:
                raise DataError(f"extra output {name!r} has {value.shape[0]} rows, expected {n}")

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    def subset(self, index: Tensor) -> Outputs:
        """The rows ``index`` (a boolean mask or integer indices); head parameters are kept."""
        return replace(
            self,
            logits=self.logits[index],
            features=self.features[index],
            labels=self.labels[index],
            extras={k: v[index] for k, v in self.extras.items()},
        )

    def to(self, device: torch.device | str) -> Outputs:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return Outputs(
            logits=self.logits.to(device),
            features=self.features.to(device),
            labels=self.labels.to(device),
            extras={k: v.to(device) for k, v in self.extras.items()},
            head_weight=move(self.head_weight),
            head_bias=move(self.head_bias),
        )

    @staticmethod
    def concat(parts: list[Outputs]) -> Outputs:
        """Rows of several :class:`Outputs` of the same model, stacked."""
        if not parts:
            raise DataError("cannot concatenate an empty list of outputs")
        first = parts[0]
        return Outputs(
            logits=torch.cat([p.logits for p in parts]),
            features=torch.cat([p.features for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            extras={k: torch.cat([p.extras[k] for p in parts]) for k in first.extras},
            head_weight=first.head_weight,
            head_bias=first.head_bias,
        )
