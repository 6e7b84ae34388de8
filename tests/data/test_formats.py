"""Readers on tiny files written here in the real formats, and the offline benchmark."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from oodlab.data import DATASETS, build_benchmark
from oodlab.data.datasets.bundled import random_crops, sklearn_digits
from oodlab.data.datasets.idx import DEBIAN_DIR, FILES, fashion_mnist, read_idx
from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError


def write_idx(path, array: np.ndarray) -> bytes:
    """The IDX format: 0, 0, type 0x08 (uint8), ndim, big-endian int32 dims, then the data."""
    raw = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw))
    return raw


def tiny_fashion_mnist(folder, n=6):
    rng = np.random.default_rng(0)
    sums = {}
    for _split, (images_name, labels_name) in FILES.items():
        images = rng.integers(0, 256, (n, 28, 28))
        labels = np.arange(n) % 10
        sums[images_name] = hashlib.sha256(write_idx(folder / images_name, images)).hexdigest()
        sums[labels_name] = hashlib.sha256(write_idx(folder / labels_name, labels)).hexdigest()
    return sums


def test_idx_round_trip_and_checksums(tmp_path):
    sums = tiny_fashion_mnist(tmp_path)
    data = fashion_mnist(tmp_path, "train", checksums=sums)
    expected = read_idx(tmp_path / "train-images-idx3-ubyte.gz", None)
    assert torch.equal(data.images[:, 0], torch.from_numpy(expected.copy()))
    assert data.targets.tolist() == [0, 1, 2, 3, 4, 5]
    x, y = data[2]
    assert x.shape == (1, 28, 28)
    assert x.max() <= 1.0
    assert y == 2
    # The published checksums reject these fake files, naming the file.
    with pytest.raises(ChecksumError, match=r"train-images-idx3-ubyte\.gz"):
        read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "broken.gz", None)


def test_missing_fashion_mnist_names_layout_and_source(tmp_path, monkeypatch):
    monkeypatch.setattr("oodlab.data.datasets.idx.DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        fashion_mnist(tmp_path / "empty", "train")
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "\n" not in str(info.value)


def test_digits_and_crops():
    digits = sklearn_digits()
    assert len(digits) == 1797
    assert digits.images.shape == (1797, 1, 28, 28)
    from sklearn.datasets import load_digits

    # Bilinear up-sampling keeps each image's mean intensity: 0..16 maps to 0..255.
    small = torch.from_numpy(load_digits().images).mean((1, 2)) / 16
    large = digits.images.float().mean((1, 2, 3)) / 255
    torch.testing.assert_close(large, small.float(), atol=0.03, rtol=0.05)
    a = random_crops(("brick",), 5, 28, seed=0)
    assert torch.equal(a, random_crops(("brick",), 5, 28, seed=0))
    assert not torch.equal(a, random_crops(("brick",), 5, 28, seed=1))
    assert set(DATASETS.names()) >= {
        "fashion_mnist",
        "sklearn_digits",
        "skimage_photos",
        "skimage_textures",
    }


needs_fmnist = pytest.mark.skipif(
    not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)


@needs_fmnist
def test_fmnist_lt_offline_benchmark():
    bench = build_benchmark("fmnist_lt", n_aux=500, n_textures=200)
    assert bench.class_counts == [int(6000 * 0.01 ** (c / 9)) for c in range(10)]
    assert np.bincount(bench.train.targets.numpy()).tolist() == bench.class_counts
    assert len(bench.test) == 10000
    assert {k: len(v) for k, v in bench.ood.items()} == {"digits": 1797, "textures": 200}
    assert len(bench.aux) == 500
    assert bench.far == ("digits", "textures")
    # The kept rows are the first n_c images of each class in the original file order.
    full = fashion_mnist(None, "train")
    first_class0 = np.flatnonzero(full.targets.numpy() == 0)[:6000]
    assert np.isin(first_class0, bench.lt_indices).all()


@needs_fmnist
def test_fmnist_lt_open_holds_out_four_classes():
    bench = build_benchmark("fmnist_lt_open", n_aux=100, n_textures=100, test_size=1000)
    assert bench.num_classes == 6
    assert bench.near == ("fmnist_held_out",)
    assert set(bench.train.targets.tolist()) == set(range(6))
    assert len(bench.ood["fmnist_held_out"]) == pytest.approx(1000, abs=4)
