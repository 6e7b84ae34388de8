"""CIFAR pickle batches, TinyImages .npy, SC-OOD / ImageNet-LT lists and image folders, written
here in their real formats and read back through the public readers."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from oodlab.data.datasets.cifar import read_cifar
from oodlab.data.datasets.image_lists import read_image_folder, read_image_list, read_sc_ood_list
from oodlab.data.datasets.tinyimages import tinyimages_300k
from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError


def write_cifar10(root, n_per_batch=4):
    """Python-2-style batches: dict with bytes keys, uint8 (N, 3072) data, list labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    checksums, arrays = {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n_per_batch))
        payload = pickle.dumps({b"data": data, b"labels": [int(v) for v in labels]}, protocol=2)
        (folder / name).write_bytes(payload)
        checksums[f"cifar-10-batches-py/{name}"] = hashlib.md5(payload).hexdigest()
        arrays[name] = (data, labels)
    return checksums, arrays


def test_cifar10_batches_after_md5(tmp_path):
    checksums, arrays = write_cifar10(tmp_path)
    train = read_cifar(tmp_path, "cifar10", "train", checksums)
    assert len(train) == 20
    first, labels = arrays["data_batch_1"]
    # Row-major 3072 = 3 channels x 32 x 32, batches concatenated in order.
    assert torch.equal(train.images[0], torch.from_numpy(first[0].reshape(3, 32, 32)))
    assert train.targets[:4].tolist() == labels
    # The published md5s reject these fake files before anything is unpickled.
    with pytest.raises(ChecksumError, match="data_batch_1"):
        read_cifar(tmp_path, "cifar10", "train")


def test_cifar_refuses_code_in_a_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_cifar(
            tmp_path,
            "cifar10",
            "test",
            {"cifar-10-batches-py/test_batch": hashlib.md5(evil).hexdigest()},
        )


def test_cifar_missing_names_layout_and_source(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"cs\.toronto\.edu") as info:
        read_cifar(tmp_path, "cifar100", "train")
    assert "cifar-100-python/train" in str(info.value)


def test_tinyimages_first_n_memory_mapped(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "300K_random_images.npy", array)
    data = tinyimages_300k(tmp_path, num_images=4)
    assert len(data) == 4
    assert torch.equal(data.images[2], torch.from_numpy(array[2]).permute(2, 0, 1))
    assert data.targets.tolist() == [-1] * 4
    (tmp_path / "bad").mkdir()
    np.save(tmp_path / "bad" / "300K_random_images.npy", array[..., 0])
    with pytest.raises(DataError, match="expected uint8"):
        tinyimages_300k(tmp_path / "bad")


def write_png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_image_lists_and_sc_ood_split(tmp_path):
    for i, value in enumerate([10, 20, 30, 40]):
        write_png(tmp_path / "images" / f"{i}.png", value)
    (tmp_path / "train.txt").write_text("images/0.png 3\nimages/1.png 7\n")
    listed = read_image_list(tmp_path, tmp_path / "train.txt")
    assert listed.targets.tolist() == [3, 7]
    x, y = listed[1]
    assert y == 7
    assert x.shape == (3, 8, 8)
    assert x.mul(255).round().unique().tolist() == [20.0]
    sc = tmp_path / "test_tin.txt"
    sc.write_text(
        'images/0.png {"sc_label": -1}\nimages/1.png {"sc_label": 4}\n'
        'images/2.png {"sc_label": -1, "other": 1}\nimages/3.png {"sc_label": 0}\n'
    )
    true_ood, fake_ood = read_sc_ood_list(tmp_path, sc)
    assert true_ood.paths == ["images/0.png", "images/2.png"]
    assert fake_ood.paths == ["images/1.png", "images/3.png"]
    assert fake_ood.targets.tolist() == [4, 0]  # moved to the ID side with their class
    folder = read_image_folder(tmp_path / "images")
    assert folder.paths == ["0.png", "1.png", "2.png", "3.png"]
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    broken = read_image_folder(tmp_path / "images")
    with pytest.raises(DataError, match=r"broken\.png"):
        broken[broken.paths.index("broken.png")]
    (tmp_path / "bad.txt").write_text("images/0.png cat\n")
    with pytest.raises(DataError, match=r"bad\.txt:1"):
        read_image_list(tmp_path, tmp_path / "bad.txt")
