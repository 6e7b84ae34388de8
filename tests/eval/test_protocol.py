"""Which way extraction reads a model: features/head only when they compose to model(x)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import TensorDataset

from oodlab.errors import DataError
from oodlab.eval.extract import ExtractConfig, extract, model_protocol

# (constructor, keyword arguments, the classifier layer the hook must find)
TORCHVISION = {
    "swin_t": ({}, "head"),
    "resnet18": ({}, "fc"),
    "convnext_tiny": ({}, "classifier.2"),
    "efficientnet_b0": ({}, "classifier.1"),
    "vit_b_16": ({"image_size": 32}, "heads.head"),
}


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only add overhead
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_classifiers_are_read_from_outputs_equal_to_model_x(name, one_thread):
    kwargs, layer = TORCHVISION[name]
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=5, **kwargs).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    data = TensorDataset(x, torch.zeros(3, dtype=torch.long))
    out = extract(model, data, ExtractConfig(cache_dir=None, quiet=True, device="cpu"))
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(out.logits, expected, rtol=1e-4, atol=1e-5)
    # the features are the classifier's input: W·z + b rebuilds the logits
    assert out.head_weight is not None
    assert out.head_bias is not None
    rebuilt = out.features @ out.head_weight.T + out.head_bias
    torch.testing.assert_close(rebuilt, expected, rtol=1e-4, atol=1e-4)
    assert model_protocol(model, data, device="cpu") == f"last-linear hook ({layer})"


class Split(nn.Module):
    """features/head that compose to forward: read natively."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.fc = nn.Linear(6, 3)
        self.scale = scale

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.head(self.features(x))


def _data(n: int = 5) -> TensorDataset:
    return TensorDataset(torch.randn(n, 4), torch.zeros(n, dtype=torch.long))


def test_a_model_whose_features_and_head_compose_is_read_natively():
    assert model_protocol(Split(), _data(), device="cpu") == "features/head"


def test_a_forward_that_differs_from_the_split_is_refused_not_misread():
    model = Split(scale=2.0)  # forward rescales: neither the split nor the last Linear is model(x)
    with pytest.raises(DataError, match="does not produce model"):
        extract(model, _data(), ExtractConfig(cache_dir=None, quiet=True, device="cpu"))
