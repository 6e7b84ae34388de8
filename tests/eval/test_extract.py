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
    entry = cache_path(tmp_path / "cache", model_fingerprint(model), dataset_fingerprint(data))
    features = entry / "features.npy"
    raw = bytearray(features.read_bytes())
    raw[-7] ^= 0xFF  # one flipped byte inside the last feature
    features.write_bytes(bytes(raw))
    calls = model.calls
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = extract(model, data, _config(tmp_path))
    assert model.calls > calls  # recomputed, not served
    messages = [str(w.message) for w in caught if "corrupted" in str(w.message)]
    assert len(messages) == 1
    assert "\n" not in messages[0]
    assert "SHA-256" in messages[0]
    with torch.no_grad():
        torch.testing.assert_close(out.features, toy.model.features(toy.x_id))
    # A truncated file and a missing meta.json are not served either.
    (entry / "logits.npy").write_bytes((entry / "logits.npy").read_bytes()[:100])
    calls = model.calls
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        extract(model, data, _config(tmp_path))
    assert model.calls > calls
    (entry / "meta.json").unlink()
    calls = model.calls
    again = extract(model, data, _config(tmp_path))
    assert model.calls > calls
    with torch.no_grad():
        torch.testing.assert_close(again.logits, toy.model(toy.x_id))


def test_cache_entry_is_memory_mapped_and_written_in_chunks(toy, tmp_path, monkeypatch):
    import numpy as np

    from oodlab.scores._stream import is_file_backed

    # No full-size concatenation happens while extracting: torch.cat is never called.
    def no_cat(*args: object, **kwargs: object) -> None:
        raise AssertionError("extraction concatenated batches")

    model = CountingModel(toy.model)
    data = TensorDataset(toy.x_id, toy.y_id)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "cat", no_cat)
        out = extract(model, data, _config(tmp_path, batch_size=7))
    entry = cache_path(tmp_path / "cache", model_fingerprint(model), dataset_fingerprint(data))
    assert sorted(p.name for p in entry.iterdir()) == [
        "features.npy",
        "head_bias.npy",
        "head_weight.npy",
        "labels.npy",
        "logits.npy",
        "meta.json",
    ]
    on_disk = np.load(entry / "features.npy", allow_pickle=False)
    with torch.no_grad():
        np.testing.assert_allclose(on_disk, toy.model.features(toy.x_id).numpy(), atol=1e-6)
    assert is_file_backed(out.features)
    assert is_file_backed(out.logits)
    if Path("/proc/self/maps").is_file():  # the tensor's memory is a mapping of the file
        address = out.features.data_ptr()
        mapped = [
            line.split()[0].split("-")
            for line in Path("/proc/self/maps").read_text().splitlines()
            if line.endswith(str(entry / "features.npy"))
        ]
        assert any(int(lo, 16) <= address < int(hi, 16) for lo, hi in mapped)
    # No temporary folder is left beside the entry.
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]


def test_an_old_format_entry_is_ignored(toy, tmp_path):
    import json

    model = CountingModel(toy.model)
    data = TensorDataset(toy.x_id, toy.y_id)
    extract(model, data, _config(tmp_path))
    entry = cache_path(tmp_path / "cache", model_fingerprint(model), dataset_fingerprint(data))
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps({**meta, "format": 2}))
    calls = model.calls
    extract(model, data, _config(tmp_path))
    assert model.calls > calls
    assert json.loads((entry / "meta.json").read_text())["format"] == 3


def test_two_writers_of_one_entry_both_get_correct_outputs(toy, tmp_path):
    from oodlab.eval.cache import OutputsWriter, entry_dir

    entry = entry_dir(tmp_path, "model", "key")
    batch = {"logits": toy.x_id[:4, :3], "features": toy.x_id[:4], "labels": toy.y_id[:4]}
    first, second = OutputsWriter(4, entry, "key"), OutputsWriter(4, entry, "key")
    first.append(batch)
    second.append({**batch, "features": batch["features"] + 1})
    a = first.finish(None, None)
    b = second.finish(None, None)  # published second: reads the first writer's entry
    assert torch.equal(a.features, toy.x_id[:4])
    assert torch.equal(b.features, a.features)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]


def test_float16_features_are_within_the_stated_rounding_error(toy, tmp_path):
    model = CountingModel(toy.model)
    data = TensorDataset(toy.x_id, toy.y_id)
    full = extract(model, data, _config(tmp_path))
    half = extract(model, data, _config(tmp_path, feature_dtype="float16"))
    assert half.features.dtype == torch.float16
    assert torch.equal(half.logits, full.logits)
    exact, rounded = full.features.double(), half.features.double()
    normal = exact.abs() >= 2**-14
    assert bool(((rounded - exact).abs() <= 2**-11 * exact.abs())[normal].all())
    assert bool(((rounded - exact).abs() <= 2**-25)[~normal].all())


def test_datasets_agreeing_on_all_but_one_item_get_different_keys(tmp_path):
    from torch.utils.data import Dataset, Subset

    class Items(Dataset):
        def __init__(self, x: torch.Tensor) -> None:
            self.x = x

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return self.x[i], 0

    x = torch.randn(100, 3)
    y = x.clone()
    y[57, 1] += 1e-3  # one value of one item that no 8-item sample would see
    assert dataset_fingerprint(Items(x)) != dataset_fingerprint(Items(y))
    assert dataset_fingerprint(Items(x)) == dataset_fingerprint(Items(x.clone()))
    labels = torch.zeros(100, dtype=torch.long)
    assert dataset_fingerprint(TensorDataset(x, labels)) != dataset_fingerprint(
        TensorDataset(y, labels)
    )
    base = TensorDataset(x, labels)
    assert dataset_fingerprint(Subset(base, list(range(50)))) != dataset_fingerprint(
        Subset(base, [*range(49), 60])
    )


def test_image_list_key_follows_file_contents(tmp_path):
    import os

    from PIL import Image

    from oodlab.data.datasets.image_lists import ImageListDataset

    for i in range(3):
        Image.new("RGB", (4, 4), (i, i, i)).save(tmp_path / f"{i}.png")
    data = ImageListDataset(tmp_path, [f"{i}.png" for i in range(3)], [0, 1, 2])
    key = dataset_fingerprint(data)
    Image.new("RGB", (5, 4), (9, 9, 9)).save(tmp_path / "1.png")  # same path, new image
    os.utime(tmp_path / "1.png", ns=(1, 1))
    assert dataset_fingerprint(data) != key


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
