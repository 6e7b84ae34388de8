from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from oodlab.errors import DataError
from oodlab.eval.extract import (
    ExtractConfig,
    cache_path,
    dataset_fingerprint,
    extract,
    model_fingerprint,
)


class CountingModel(nn.Module):
    """The toy model of conftest with a counter of forward passes through ``features``."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.base.features(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.base.head(z)

    def linear_head(self) -> nn.Linear:
        return self.base.classifier


def _config(tmp_path: Path, **kw: object) -> ExtractConfig:
    options: dict = {
        "batch_size": 16,
        "device": "cpu",
        "cache_dir": tmp_path / "cache",
        "quiet": True,
    }
    return ExtractConfig(**{**options, **kw})


def test_second_extraction_comes_from_cache(toy, tmp_path):
    model = CountingModel(toy.model)
    data = TensorDataset(toy.x_id, toy.y_id)
    first = extract(model, data, _config(tmp_path))
    calls = model.calls
    assert calls == -(-len(data) // 16)  # one forward per batch
    second = extract(model, data, _config(tmp_path))
    assert model.calls == calls  # the network did not run again
    assert torch.equal(first.logits, second.logits)
    assert torch.equal(first.features, second.features)
    assert torch.equal(second.labels, toy.y_id)
    # The cached values are the model's own outputs, computed independently here.
    with torch.no_grad():
        assert torch.allclose(second.logits, toy.model(toy.x_id), atol=1e-6)
    assert torch.equal(second.head_weight, toy.model.classifier.weight)


def test_changed_weights_or_data_change_the_cache_key(toy, tmp_path):
    model = CountingModel(toy.model)
    data = TensorDataset(toy.x_id, toy.y_id)
    extract(model, data, _config(tmp_path))
    key = model_fingerprint(model)
    with torch.no_grad():
        model.base.classifier.bias.add_(1.0)
    assert model_fingerprint(model) != key
    calls = model.calls
    out = extract(model, data, _config(tmp_path))
    assert model.calls > calls
    with torch.no_grad():
        assert torch.allclose(out.logits, toy.model(toy.x_id), atol=1e-6)
    other = TensorDataset(toy.x_id + 1, toy.y_id)
    assert dataset_fingerprint(other) != dataset_fingerprint(data)


def test_corrupted_cache_entry_is_recomputed(toy, tmp_path):
    model = CountingModel(toy.model)
    data = TensorDataset(toy.x_id, toy.y_id)
    extract(model, data, _config(tmp_path))
    path = cache_path(tmp_path / "cache", model_fingerprint(model), dataset_fingerprint(data))
    path.write_bytes(path.read_bytes()[:100])
    calls = model.calls
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = extract(model, data, _config(tmp_path))
    assert model.calls > calls
    assert any("unreadable cache" in str(w.message) for w in caught)
    assert len(out) == len(data)


class PlainNet(nn.Module):
    """A torchvision-style classifier: no features()/head(), the last nn.Linear is `fc`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 5), nn.ReLU())
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def test_any_module_with_a_linear_classifier(tmp_path):
    torch.manual_seed(0)
    net = PlainNet()
    x = torch.randn(10, 6)
    out = extract(net, TensorDataset(x, torch.zeros(10, dtype=torch.long)), _config(tmp_path))
    with torch.no_grad():
        assert torch.allclose(out.features, net.body(x), atol=1e-6)
        assert torch.allclose(out.logits, net(x), atol=1e-6)
    assert torch.equal(out.head_weight, net.fc.weight)


def test_model_without_classifier_and_empty_data_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="features"):
        extract(nn.ReLU(), TensorDataset(torch.randn(2, 3), torch.zeros(2)), _config(tmp_path))
    empty = TensorDataset(torch.empty(0, 6), torch.empty(0, dtype=torch.long))
    with pytest.raises(DataError, match="empty"):
        extract(PlainNet(), empty, _config(tmp_path, cache_dir=None))


def test_extra_head_outputs_are_cached(tmp_path):
    from oodlab.models import MODELS
    from oodlab.models.heads import BinaryDiscriminator, WithHeads
    from oodlab.scores.bin_disc import bin_disc

    torch.manual_seed(0)
    backbone = MODELS.create("small_cnn", num_classes=3, in_channels=1, width=0.25)
    model = WithHeads(backbone, {"bin_logit": BinaryDiscriminator(backbone.feature_dim)}).eval()
    x = torch.rand(6, 1, 28, 28)
    out = extract(model, TensorDataset(x, torch.zeros(6, dtype=torch.long)), _config(tmp_path))
    with torch.no_grad():
        expected = model.extra_heads["bin_logit"](backbone.features(x))
    torch.testing.assert_close(out.extras["bin_logit"], expected)
    torch.testing.assert_close(bin_disc(out.extras["bin_logit"]), 1 - torch.sigmoid(expected))
