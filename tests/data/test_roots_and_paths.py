"""A given data root is used or refused (never replaced by the system copy); listed image
paths stay inside the root; damaged IDX / .npy files are one line, before anything is parsed."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from oodlab.data.datasets.idx import find_fashion_mnist, read_idx
from oodlab.data.datasets.image_lists import ImageListDataset, read_image_list
from oodlab.data.datasets.tinyimages import tinyimages_300k
from oodlab.errors import ChecksumError, DataError, DatasetNotFoundError, describe_error


def test_a_given_data_root_is_never_replaced_by_the_system_copy(tmp_path, monkeypatch):
    import oodlab.data.datasets.idx as idx

    system = tmp_path / "system"
    system.mkdir()
    for pair in idx.FILES.values():
        for name in pair:
            (system / name).write_bytes(b"")
    monkeypatch.setattr(idx, "DEBIAN_DIR", system)
    assert find_fashion_mnist(None) == system  # no root given: the system copy
    with pytest.raises(DatasetNotFoundError, match="nonexistent") as info:
        find_fashion_mnist(tmp_path / "nonexistent")
    assert str(system) not in str(info.value)


def test_listed_paths_must_stay_inside_the_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "a" / "x.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    listing = tmp_path / "list.txt"
    listing.write_text("a/x.png 0\na/../a/x.png 1\n")
    assert len(read_image_list(root, listing)) == 2  # '..' that stays inside is fine
    listing.write_text("a/x.png 0\n../outside.png 1\n")
    with pytest.raises(DataError, match=r"entry 2 \(../outside.png\) points outside") as info:
        read_image_list(root, listing)
    assert "\n" not in str(info.value)
    listing.write_text(f"a/../../outside.png 0\n{tmp_path / 'outside.png'} 1\n")
    with pytest.raises(DataError, match="entry 1"):
        read_image_list(root, listing)
    listing.write_text(f"{tmp_path / 'outside.png'} 1\n")
    with pytest.raises(DataError, match="is an absolute path"):
        read_image_list(root, listing)
    allowed = ImageListDataset(root, [str(tmp_path / "outside.png")], [1], allow_absolute=True)
    assert allowed[0][0].shape == (3, 4, 4)
    monkeypatch.setenv("OODLAB_ALLOW_ABSOLUTE_PATHS", "1")
    assert len(read_image_list(root, listing)) == 1


def test_truncated_or_non_gzip_idx_is_one_line_before_parsing(tmp_path):
    payload = bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes([1, 2, 3, 4])
    good = tmp_path / "good-idx1-ubyte.gz"
    good.write_bytes(gzip.compress(payload))
    assert read_idx(good, checksums=None).tolist() == [1, 2, 3, 4]
    cut = tmp_path / "cut-idx1-ubyte.gz"
    cut.write_bytes(good.read_bytes()[:-6])
    plain = tmp_path / "plain-idx1-ubyte.gz"
    plain.write_bytes(payload)
    for path in (cut, plain):
        with pytest.raises(ChecksumError, match="not a complete gzip file") as info:
            read_idx(path, checksums=None)
        assert "\n" not in str(info.value)


def test_a_bad_tinyimages_file_is_one_line(tmp_path):
    path = tmp_path / "300K_random_images.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"not a readable uint8 \.npy array"):
        tinyimages_300k(tmp_path)
    np.save(path, np.zeros((4, 32, 32, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-500])  # truncated
    with pytest.raises(DataError, match="not a readable"):
        tinyimages_300k(tmp_path)


def test_a_worker_error_reaches_the_user_as_its_own_line(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "broken.png").write_bytes(b"not an image")
    dataset = ImageListDataset(root, ["broken.png"], [0])
    loader = DataLoader(dataset, batch_size=1, num_workers=2)
    with pytest.raises(DataError) as info:
        next(iter(loader))
    assert "Traceback" in str(info.value)  # torch wraps the worker's traceback
    line = describe_error(info.value)
    assert line.startswith("cannot decode image ")
    assert "broken.png" in line
    assert "\n" not in line


def test_os_errors_name_the_path_and_the_reason():
    err = OSError(28, "No space left on device", "/data/run/checkpoint.pt")
    expected = "cannot use /data/run/checkpoint.pt: the disk is full; free space or choose a "
    assert describe_error(err) == expected + "folder on another disk"
    assert "permission denied" in describe_error(PermissionError(13, "Permission denied", "/x"))
    assert describe_error(ValueError("a\nb")) == "a b"
