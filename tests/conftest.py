"""Tiny deterministic fixtures shared by the test suite.

The toy problem: ``C`` classes whose features lie near ``SCALE * e_c`` (the first ``C``
basis vectors of ``R^D``); a linear head with ``W = e_c`` rows, so ID logits are peaked.
OOD points lie far away in the remaining ``D - C`` dimensions, where the head is blind,
so their logits are flat. Every sensible score separates the two (the sign pin).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from oodlab.types import Outputs

NUM_CLASSES = 4
DIM = 12
SCALE = 4.0


class ToyModel(nn.Module):
    """``features(x) = flatten(x)`` (times an identity layer), ``head = nn.Linear(D, C)``."""

    def __init__(self, dim: int = DIM, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.body = nn.Linear(dim, dim)
        self.classifier = nn.Linear(dim, num_classes)
        with torch.no_grad():
            self.body.weight.copy_(torch.eye(dim))
            self.body.bias.zero_()
            self.classifier.weight.copy_(torch.eye(num_classes, dim))
            self.classifier.bias.zero_()

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.flatten(1))

    def head(self, z: Tensor) -> Tensor:
        return self.classifier(z)

    def linear_head(self) -> nn.Linear:
        return self.classifier

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        return [x.flatten(1), self.features(x)]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@dataclass
class ToyData:
    model: ToyModel
    x_train: Tensor
    y_train: Tensor
    x_id: Tensor
    y_id: Tensor
    x_ood: Tensor
    train: Outputs
    id: Outputs
    ood: Outputs
    aux: Outputs  # auxiliary outliers, drawn independently of the OOD test points


def make_inputs(n_per_class: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    labels = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
    x = 0.5 * torch.randn(len(labels), DIM, generator=generator)
    x[torch.arange(len(labels)), labels] += SCALE
    return x, labels


def make_ood_inputs(n: int, generator: torch.Generator) -> Tensor:
    x = 0.3 * torch.randn(n, DIM, generator=generator)
    x[:, NUM_CLASSES:] += SCALE * torch.sign(torch.randn(n, DIM - NUM_CLASSES, generator=generator))
    return x


@torch.no_grad()
def outputs_of(model: ToyModel, x: Tensor, labels: Tensor) -> Outputs:
    z = model.features(x)
    return Outputs(
        logits=model.head(z),
        features=z,
        labels=labels,
        extras={"bin_logit": SCALE - z[:, NUM_CLASSES:].abs().sum(1) / 2},
        head_weight=model.classifier.weight.detach().clone(),
        head_bias=model.classifier.bias.detach().clone(),
    )


@pytest.fixture
def toy() -> ToyData:
    generator = torch.Generator().manual_seed(0)
    model = ToyModel().eval()
    x_train, y_train = make_inputs(50, generator)
    x_id, y_id = make_inputs(20, generator)
    x_ood = make_ood_inputs(60, generator)
    x_aux = make_ood_inputs(80, generator)
    return ToyData(
        model=model,
        x_train=x_train,
        y_train=y_train,
        x_id=x_id,
        y_id=y_id,
        x_ood=x_ood,
        train=outputs_of(model, x_train, y_train),
        id=outputs_of(model, x_id, y_id),
        ood=outputs_of(model, x_ood, torch.full((len(x_ood),), -1)),
        aux=outputs_of(model, x_aux, torch.full((len(x_aux),), -1)),
    )
