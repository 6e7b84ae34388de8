"""``feature_tail`` (a model over stored embeddings) and the ``embeddings`` benchmark: the
features/head contract with a frozen cosine classifier, checked against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.data import build_benchmark
from oodlab.errors import ConfigError, DataError
from oodlab.models import MODELS, attach_heads


def _files(tmp_path, n=12, dim=6, classes=3):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=generator)
    y = torch.arange(n) % classes
    text = torch.randn(classes, 4, generator=generator)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    torch.save(text, tmp_path / "text.pt")
    np.save(tmp_path / "ood.npy", torch.randn(5, dim, generator=generator).numpy())
    return x, y, text


def test_feature_tail_classifies_by_cosine_to_the_class_embeddings(tmp_path):
    x, _, text = _files(tmp_path)
    model = MODELS.create(
        "feature_tail", num_classes=3, in_channels=6, class_embeddings=str(tmp_path / "text.pt")
    ).eval()
    with torch.no_grad():
        z = model.features(x)
        assert z.shape == (12, model.feature_dim) == (12, 4)
        w = text / text.norm(dim=1, keepdim=True)  # by hand: cosines to the class embeddings
        expected = (z / z.norm(dim=1, keepdim=True)) @ w.T
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(model.head(z), expected)
        torch.testing.assert_close(model.linear_head().weight, w)
        assert model.linear_head().bias is None
    assert not any(p.requires_grad for p in model.linear_head().parameters())  # frozen
    # Extra heads read the raw features; the classifier keeps reading their unit vector.
    wrapped = attach_heads(model, {"bin_logit": {"kind": "bin_logit", "hidden": 8}})
    with torch.no_grad():
        torch.testing.assert_close(wrapped.head_input(z), z / z.norm(dim=1, keepdim=True))
        torch.testing.assert_close(wrapped(x), expected)


def test_feature_tail_and_embeddings_errors_are_one_line(tmp_path):
    _files(tmp_path)
    with pytest.raises(ConfigError, match="class_embeddings is required"):
        MODELS.create("feature_tail", num_classes=3, in_channels=6)
    with pytest.raises(ConfigError, match="has 3 rows, the benchmark 5 classes"):
        MODELS.create(
            "feature_tail", num_classes=5, in_channels=6, class_embeddings=str(tmp_path / "text.pt")
        )
    with pytest.raises(DataError, match=r"data\.options\.train_labels is required"):
        build_benchmark("embeddings", train_features=str(tmp_path / "x.npy"))
    with pytest.raises(DataError, match="does not exist"):
        build_benchmark(
            "embeddings",
            train_features=str(tmp_path / "x.npy"),
            train_labels=str(tmp_path / "missing.npy"),
            class_embeddings=str(tmp_path / "text.pt"),
        )


def test_embeddings_benchmark_wraps_the_files(tmp_path):
    x, y, _ = _files(tmp_path)
    bench = build_benchmark(
        "embeddings",
        train_features=str(tmp_path / "x.npy"),
        train_labels=str(tmp_path / "y.npy"),
        class_embeddings=str(tmp_path / "text.pt"),
        ood_features={"noise": str(tmp_path / "ood.npy")},
    )
    assert (bench.num_classes, bench.image_shape) == (3, (6, 1, 1))
    assert bench.class_counts == [4, 4, 4]
    first, label = bench.train[1]
    assert torch.equal(first, x[1])
    assert int(label) == int(y[1])
    assert len(bench.test) == 0
    assert bench.far == ("noise",)
    assert int(bench.ood["noise"][0][1]) == -1
    assert set(bench.info["training_files"]) == {
        "train_features",
        "train_labels",
        "class_embeddings",
    }
