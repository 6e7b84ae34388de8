"""CIFAR-LT from generated pickle batches, and the cifar10_lt preset on tiny files in every format
(CIFAR batches, TinyImages .npy, SC-OOD lists with PNG files)."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from oodlab.data import DATASETS, build_benchmark
from oodlab.data.datasets.cifar import MD5, cifar_lt, read_cifar
from oodlab.errors import DataError


def numpy1_pickle(obj: object) -> bytes:
    """A protocol-2 pickle naming numpy 1's module, as the published (Python 2) batches do."""
    return pickle.dumps(obj, protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )


def write_cifar(root, name="cifar10", per_class=10, num_classes=10, test_per_class=2):
    """Batches whose labels cycle 0..C-1 and whose pixels all equal the row's index mod 256."""
    rng = np.random.default_rng(0)
    checksums, labels_by_file = {}, {}
    if name == "cifar10":
        folder, files, key = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "labels",
        )
        files_test = ["test_batch"]
    else:
        folder, files, key, files_test = "cifar-100-python", ["train"], "fine_labels", ["test"]
    (root / folder).mkdir(parents=True)
    n_train = per_class * num_classes
    labels = rng.permutation(np.arange(n_train) % num_classes)
    chunks = np.array_split(np.arange(n_train), len(files))
    offset = 0
    for file, rows in [
        *zip(files, chunks),
        (files_test[0], np.arange(test_per_class * num_classes)),
    ]:
        is_test = file in files_test
        y = (rows % num_classes) if is_test else labels[rows]
        data = np.repeat(
            ((rows + (1000 if is_test else 0)) % 256).astype(np.uint8)[:, None], 3072, 1
        )
        batch = {"batch_label": file, key: [int(v) for v in y], "data": data}
        if name == "cifar100":
            batch["coarse_labels"] = [int(v) // 5 for v in y]
        payload = numpy1_pickle(batch)
        (root / folder / file).write_bytes(payload)
        checksums[f"{folder}/{file}"] = hashlib.md5(payload).hexdigest()
        labels_by_file[file] = y
        offset += len(rows)
    return checksums, labels


def test_cifar10_lt_counts_first_n_in_file_order(tmp_path):
    checksums, labels = write_cifar(tmp_path, per_class=10)
    lt = cifar_lt(tmp_path, "cifar10", imbalance_ratio=0.1, checksums=checksums)
    expected_counts = [int(10 * 0.1 ** (c / 9)) for c in range(10)]
    assert lt.longtail.class_counts == expected_counts == [10, 7, 5, 4, 3, 2, 2, 1, 1, 1]
    assert np.bincount(lt.targets.numpy()).tolist() == expected_counts
    # The kept rows are the first n_c of each class, in file order, ascending.
    expected = np.sort(
        np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in enumerate(expected_counts)])
    )
    assert lt.longtail.indices.tolist() == expected.tolist()
    # Pixels identify the row: every pixel of training row i is i mod 256.
    assert lt.images[:, 0, 0, 0].tolist() == expected.tolist()
    assert lt.longtail.prior.sum() == pytest.approx(1.0)
    groups = lt.longtail.shot_groups()
    assert groups["many"].tolist() == [True, True, True] + [False] * 7
    assert groups["few"].tolist() == [False] * 7 + [True] * 3
    record = lt.longtail.to_dict()
    assert json.loads(json.dumps(record))["class_counts"] == expected_counts
    again = DATASETS.create(
        "cifar10_lt", data_root=tmp_path, imbalance_ratio=0.1, checksums=checksums
    )
    assert torch.equal(again.images, lt.images)


def test_cifar10_lt_random_rule_is_seeded(tmp_path):
    checksums, labels = write_cifar(tmp_path, per_class=10)
    a = cifar_lt(tmp_path, "cifar10", 0.1, rule="random", seed=1, checksums=checksums)
    b = cifar_lt(tmp_path, "cifar10", 0.1, rule="random", seed=1, checksums=checksums)
    c = cifar_lt(tmp_path, "cifar10", 0.1, rule="random", seed=2, checksums=checksums)
    assert a.longtail.indices.tolist() == b.longtail.indices.tolist()
    assert a.longtail.indices.tolist() != c.longtail.indices.tolist()
    assert np.bincount(labels[a.longtail.indices]).tolist() == a.longtail.class_counts


def test_cifar100_fine_labels_and_test_split(tmp_path):
    checksums, labels = write_cifar(tmp_path, "cifar100", per_class=5, num_classes=100)
    train = read_cifar(tmp_path, "cifar100", "train", checksums)
    assert train.targets.tolist() == labels.tolist()
    test = read_cifar(tmp_path, "cifar100", "test", checksums)
    assert test.targets.tolist() == [i % 100 for i in range(200)]
    assert test.images[5, :, 3, 7].tolist() == [(1000 + 5) % 256] * 3
    lt = cifar_lt(tmp_path, "cifar100", 0.2, checksums=checksums)
    assert lt.longtail.class_counts == [int(5 * 0.2 ** (c / 99)) for c in range(100)]


def test_cifar_checksums_must_cover_every_file(tmp_path):
    checksums, _ = write_cifar(tmp_path)
    partial = dict(checksums)
    del partial["cifar-10-batches-py/data_batch_3"]
    with pytest.raises(DataError, match="data_batch_3"):
        read_cifar(tmp_path, "cifar10", "train", partial)
    assert set(MD5) >= {"cifar-10-batches-py/data_batch_1", "cifar-100-python/train"}


def test_cifar_refuses_other_globals_even_with_matching_md5(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    payload = pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": print})
    (folder / "test_batch").write_bytes(payload)
    md5 = {"cifar-10-batches-py/test_batch": hashlib.md5(payload).hexdigest()}
    with pytest.raises(DataError, match=r"refusing to unpickle builtins\.print"):
        read_cifar(tmp_path, "cifar10", "test", md5)


def write_scood(root, id_name, names, sc_labels):
    """SC-OOD layout: data/imglist/benchmark_<id>/test_<name>.txt + data/images/<name>/<i>.png."""
    lists = root / "data" / "imglist" / f"benchmark_{id_name}"
    lists.mkdir(parents=True)
    for name in names:
        lines = []
        for i, sc in enumerate(sc_labels):
            path = root / "data" / "images" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((36, 36, 3), 10 * i, np.uint8)).save(path)
            lines.append(f'{name}/{i}.png {{"sc_label": {sc}, "label": {sc}}}')
        (lists / f"test_{name}.txt").write_text("\n".join(lines) + "\n")


def test_cifar10_lt_preset_on_generated_files(tmp_path):
    checksums, _ = write_cifar(tmp_path, per_class=10)
    aux = np.arange(12 * 32 * 32 * 3, dtype=np.int64).reshape(12, 32, 32, 3) % 251
    np.save(tmp_path / "300K_random_images.npy", aux.astype(np.uint8))
    write_scood(tmp_path, "cifar10", ["texture", "tin"], [-1, 3, -1, -1, 0])
    bench = build_benchmark(
        "cifar10_lt", tmp_path, seed=0, imbalance_ratio=0.1, n_aux=8,
        ood_sets=("texture", "tin"), checksums=checksums,
    )  # fmt: skip
    assert bench.class_counts == [10, 7, 5, 4, 3, 2, 2, 1, 1, 1]
    assert len(bench.train) == 36
    assert len(bench.test) == 20
    assert len(bench.aux) == 8
    assert torch.equal(
        bench.aux.images[3], torch.from_numpy(aux[3].astype(np.uint8)).permute(2, 0, 1)
    )
    assert {k: len(v) for k, v in bench.ood.items()} == {"texture": 3, "tin": 3}
    # sc_label >= 0 images are moved to the ID side, with their class label.
    assert bench.fake_ood["texture"].targets.tolist() == [3, 0]
    assert bench.ood["tin"].paths == ["tin/0.png", "tin/2.png", "tin/3.png"]
    assert bench.near == ("tin",)
    assert bench.far == ("texture",)
    x, y = bench.ood["texture"][1]  # image 2: value 20, resized 36 -> 32 by PASCL's test transform
    assert y == -1
    assert tuple(x.shape) == (3, 32, 32)
    assert torch.allclose(x, torch.full_like(x, 20 / 255), atol=1e-6)
