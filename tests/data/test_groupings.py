"""Class → group mappings: the Fashion-MNIST grouping, user files, the ImageNet taxonomy list."""

from __future__ import annotations

import json
import random

import pytest

from oodlab.data.groupings import (
    FASHION_MNIST,
    IMAGENET_GROUP_SIZES,
    Grouping,
    from_group_ids,
    load_grouping,
    load_imagenet_taxonomy,
)
from oodlab.errors import ConfigError, DataError


def test_fashion_mnist_grouping_covers_every_class_once():
    assert sorted(FASHION_MNIST.class_order) == list(range(10))
    assert FASHION_MNIST.group_sizes == [5, 3, 4, 2]  # tops 4, bottoms 2, footwear 3, bags 1 (+1)
    assert load_grouping("fashion_mnist", 10) is FASHION_MNIST
    with pytest.raises(ConfigError, match="covers 10 classes but the data has 6"):
        load_grouping("fashion_mnist", 6)


def test_group_ids_per_class():
    grouping = from_group_ids([2, 0, 2, 0, 1])
    assert grouping.groups == ((1, 3), (4,), (0, 2))
    assert grouping.class_order == [1, 3, 4, 0, 2]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("g.json", json.dumps({"a": [2, 0], "b": [1]})),
        ("g.json", json.dumps([0, 1, 0])),
        ("g.txt", "# class group\n2 a\n1 b\n0 a  # within-group order: 2 then 0\n"),
    ],
)
def test_grouping_files(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    grouping = load_grouping(path, 3)
    assert sorted(grouping.class_order) == [0, 1, 2]
    assert sorted(grouping.groups, key=len) in ([(1,), (2, 0)], [(1,), (0, 2)])


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("g.json", "{not json", "not valid JSON"),
        ("g.json", json.dumps({"a": "x"}), "expected"),
        ("g.json", json.dumps({"a": [0, 0], "b": [1, 2]}), "exactly once"),
        ("g.txt", "0 a\n1\n", "g.txt:2: expected 'CLASS_ID GROUP'"),
    ],
)
def test_bad_grouping_files_fail_with_one_line(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_grouping(path, 3)
    assert "\n" not in str(info.value)


def test_missing_grouping_file_says_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist.*fashion_mnist"):
        load_grouping(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="at least one class"):
        Grouping(((0,), ()), ("a", "b"))


def _taxonomy(tmp_path, sizes=IMAGENET_GROUP_SIZES):
    wnids = [f"n{10000000 + 37 * i:08d}" for i in range(1000)]
    shuffled = wnids[:]
    random.Random(0).shuffle(shuffled)
    lines, start = [], 0
    for g, n in enumerate(sizes):
        for j, wnid in enumerate(shuffled[start : start + n]):
            lines += [f"train/{wnid}/{wnid}_{k}.JPEG {g} {j + 1}" for k in range(2)]
        start += n
    random.Random(1).shuffle(lines)
    path = tmp_path / "imagenet2012_group_softmax_train_list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, wnids, shuffled


def test_imagenet_taxonomy_from_the_official_list_format(tmp_path):
    path, wnids, shuffled = _taxonomy(tmp_path)
    grouping = load_imagenet_taxonomy(path, wnids)
    assert [len(g) for g in grouping.groups] == list(IMAGENET_GROUP_SIZES)
    assert grouping.names[0] == "animal"
    assert grouping.names[6] == "person"
    # Within-group order is the file's index, mapped to the caller's class ids.
    assert [wnids[c] for c in grouping.groups[2]] == shuffled[398 + 521 : 398 + 521 + 9]


def test_imagenet_taxonomy_errors(tmp_path):
    path, wnids, _ = _taxonomy(tmp_path, (399, 520, 9, 7, 52, 8, 3, 2))
    with pytest.raises(DataError, match=r"group sizes .* expected MOS's"):
        load_imagenet_taxonomy(path, wnids)
    path, wnids, _ = _taxonomy(tmp_path)
    with pytest.raises(DataError, match="missing"):
        load_imagenet_taxonomy(path, [*wnids[:-1], "n99999999"])
    bad = tmp_path / "bad.txt"
    bad.write_text("train/n01440764/x.JPEG zero 1\n")
    with pytest.raises(DataError, match=r"bad\.txt:1: expected 'PATH GROUP WITHIN'"):
        load_imagenet_taxonomy(bad, wnids)
    with pytest.raises(ConfigError, match="does not exist"):
        load_imagenet_taxonomy(tmp_path / "none.txt", wnids)


def test_load_grouping_reads_the_official_list_in_sorted_wnid_order(tmp_path):
    path, wnids, _ = _taxonomy(tmp_path)  # the generated wnids are already sorted
    assert load_grouping(path, 1000) == load_imagenet_taxonomy(path, wnids)
