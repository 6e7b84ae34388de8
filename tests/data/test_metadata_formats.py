"""Metadata tables, fine-grained annotations, named folders and lists, ImageNet-10K subsets and the
generated OOD sets, written here in their real formats (PNG / JPEG by PIL, csv, txt, .mat)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oodlab.data import DATASETS
from oodlab.data.datasets.finegrained import fgvc_aircraft, stanford_cars
from oodlab.data.datasets.folders import imagenet_extra, imagenet_ood_test, textures
from oodlab.data.datasets.paper_lists import imagenet_lt, openood, scood
from oodlab.data.datasets.spurious import celeba, waterbirds
from oodlab.data.datasets.synthetic import blobs, gaussian_noise, rademacher_noise, uniform_noise
from oodlab.errors import DataError, DatasetNotFoundError


def image(path, value, size=(6, 5), fmt=None):
    """A constant RGB image ``value`` of ``size`` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path, format=fmt)


def pixel(dataset, index):
    """The first pixel of item ``index`` back in 0..255 (items are floats in [0, 1])."""
    x, _ = dataset[index]
    return round(float(x[0, 0, 0]) * 255)


def test_waterbirds_metadata_csv(tmp_path):
    root = tmp_path / "waterbird_complete95_forest2water2"
    rows = [(1, "001.Black/a.jpg", 0, 0, 0), (2, "002.Gull/b.jpg", 1, 0, 1),
            (3, "002.Gull/c.jpg", 1, 2, 0), (4, "001.Black/d.jpg", 0, 1, 1),
            (5, "001.Black/e.jpg", 0, 0, 1)]  # fmt: skip
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    for i, (img_id, name, y, split, place) in enumerate(rows):
        image(root / name, 40 * i, fmt="JPEG")
        lines.append(f"{img_id},{name},{y},{split},{place},/x/{img_id}.jpg")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    train = waterbirds(tmp_path, "train")
    assert [p for p in train.paths] == ["001.Black/a.jpg", "002.Gull/b.jpg", "001.Black/e.jpg"]
    assert train.targets.tolist() == [0, 1, 0]
    assert train.extras["environment"].tolist() == [0, 1, 1]
    assert train.extras["group"].tolist() == [0, 3, 1]
    assert abs(pixel(train, 2) - 160) <= 2  # JPEG is lossy, a flat image nearly exact
    assert waterbirds(tmp_path, "test").targets.tolist() == [1]
    assert len(waterbirds(tmp_path, "all")) == 5
    with pytest.raises(DatasetNotFoundError, match=r"metadata\.csv") as info:
        waterbirds(tmp_path / "nowhere")
    assert "group_DRO" in str(info.value)


def test_celeba_grey_hair_gender_and_bald_men(tmp_path):
    root = tmp_path / "celeba"
    names = ["Bald", "Gray_Hair", "Male", "Smiling"]
    people = [  # file, Bald, Gray_Hair, Male, split
        ("000001.jpg", -1, 1, -1, 0), ("000002.jpg", -1, -1, 1, 0), ("000003.jpg", 1, -1, 1, 0),
        ("000004.jpg", -1, 1, 1, 1), ("000005.jpg", 1, -1, -1, 0), ("000006.jpg", 1, 1, 1, 2),
    ]  # fmt: skip
    attr = [str(len(people)), " ".join(names)]
    for f, bald, gray, male, _ in people:
        attr.append(f"{f}  {bald:2d} {gray:2d} {male:2d} -1")
        image(root / "img_align_celeba" / f, int(f[:6]) * 30, fmt="JPEG")
    (root / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{p[0]} {p[4]}\n" for p in people))
    train = celeba(tmp_path, "train")
    assert train.paths == [
        f"img_align_celeba/{f}" for f in ("000001.jpg", "000002.jpg", "000005.jpg")
    ]
    assert train.targets.tolist() == [1, 0, 0]
    assert train.extras["environment"].tolist() == [0, 1, 0]
    ood = celeba(tmp_path, "all", role="spurious_ood")
    assert ood.paths == ["img_align_celeba/000003.jpg", "img_align_celeba/000006.jpg"]
    assert ood.targets.tolist() == [-1, -1]
    (root / "list_attr_celeba.txt").write_text("\n".join(attr[:-1]) + "\n")
    with pytest.raises(DataError, match="announces 6 images but lists 5"):
        celeba(tmp_path)


def write_aircraft(root, variants, per_variant=2):
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "variants.txt").parent.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    lines = []
    for v, name in enumerate(variants):
        for k in range(per_variant):
            image_id = f"{v:03d}{k}"
            image(data / "images" / f"{image_id}.jpg", v, fmt="JPEG")
            lines.append(f"{image_id} {name}")
    (data / "images_variant_trainval.txt").write_text("\n".join(lines) + "\n")


def test_fgvc_aircraft_id_ood_split(tmp_path):
    variants = [f"Model {i}" if i % 3 else f"7{i}7-{i}00" for i in range(100)]
    write_aircraft(tmp_path, variants)
    id_set = fgvc_aircraft(tmp_path, role="id")
    ood_set = fgvc_aircraft(tmp_path, role="ood")
    chosen = sorted(np.random.default_rng(0).permutation(100)[:90].tolist())
    assert id_set.id_classes == chosen
    assert len(id_set) == 180
    assert len(ood_set) == 20
    # ID labels are the ranks of the original variant among the ID variants.
    assert id_set.targets.tolist() == [chosen.index(v) for v in id_set.extras["variant"]]
    assert set(ood_set.extras["variant"].tolist()) == set(range(100)) - set(chosen)
    assert ood_set.targets.tolist() == [-1] * 20
    explicit = fgvc_aircraft(tmp_path, role="id", id_classes=range(1, 91))
    assert explicit.targets[:4].tolist() == [0, 0, 1, 1]
    assert explicit.paths[:2] == ["images/0010.jpg", "images/0011.jpg"]
    with pytest.raises(DataError, match="proper subset"):
        fgvc_aircraft(tmp_path, id_classes=range(100))


def test_stanford_cars_mat_annotations(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "stanford_cars"
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
              ("class", "O"), ("fname", "O")]  # fmt: skip
    records = np.zeros(4, dtype=fields)
    for i, cls in enumerate([1, 196, 50, 1]):
        records[i] = (0, 0, 4, 4, cls, f"{i:05d}.jpg")
        image(root / "cars_train" / f"{i:05d}.jpg", 60 * i, fmt="JPEG")
    (root / "devkit").mkdir()
    savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": records})
    every = stanford_cars(tmp_path, role="all")
    assert every.targets.tolist() == [0, 195, 49, 0]
    assert every.paths == [f"cars_train/{i:05d}.jpg" for i in range(4)]
    id_set = stanford_cars(tmp_path, role="id", id_classes=range(150))
    assert id_set.targets.tolist() == [0, 49, 0]
    ood_set = stanford_cars(tmp_path, role="ood", id_classes=range(150))
    assert ood_set.paths == ["cars_train/00001.jpg"]
    assert ood_set.targets.tolist() == [-1]
    assert abs(pixel(id_set, 1) - 120) <= 2
    assert len(stanford_cars(tmp_path).id_classes) == 150


def test_named_folders_lists_and_decode_errors(tmp_path):
    for cls, value in (("banded", 1), ("zigzagged", 2)):
        for k in range(2):
            image(tmp_path / "dtd" / "images" / cls / f"{cls}_{k}.jpg", 50 * value + k, fmt="PNG")
    dtd = textures(tmp_path)
    assert dtd.paths == ["banded/banded_0.jpg", "banded/banded_1.jpg",
                         "zigzagged/zigzagged_0.jpg", "zigzagged/zigzagged_1.jpg"]  # fmt: skip
    assert [pixel(dtd, i) for i in range(4)] == [50, 51, 100, 101]
    assert dtd.targets.tolist() == [-1] * 4
    with pytest.raises(DatasetNotFoundError, match="dtd"):
        textures(tmp_path / "elsewhere")
    # ImageNet-LT: 'path label' lines relative to the data root.
    (tmp_path / "ImageNet_LT").mkdir()
    image(tmp_path / "train" / "n01440764" / "a.JPEG", 7, fmt="JPEG")
    (tmp_path / "train" / "n01443537").mkdir()
    (tmp_path / "train" / "n01443537" / "b.JPEG").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "ImageNet_LT" / "ImageNet_LT_train.txt").write_text(
        "train/n01440764/a.JPEG 0\ntrain/n01443537/b.JPEG 1\n"
    )
    lt = imagenet_lt(tmp_path, "train")
    assert lt.targets.tolist() == [0, 1]
    assert abs(pixel(lt, 0) - 7) <= 2
    with pytest.raises(DataError, match=r"b\.JPEG"):
        lt[1]


def test_openood_lists_and_scood_names(tmp_path):
    lists = tmp_path / "benchmark_imglist" / "cifar10"
    lists.mkdir(parents=True)
    for i in range(3):
        image(tmp_path / "images_classic" / "cifar10" / "test" / f"{i}.png", i)
        image(tmp_path / "images_classic" / "tin" / "test" / f"{i}.png", 100 + i)
    (lists / "test_cifar10.txt").write_text(
        "".join(f"cifar10/test/{i}.png {i}\n" for i in range(3))
    )
    (lists / "test_tin.txt").write_text("".join(f"tin/test/{i}.png 0\n" for i in range(3)))
    id_test = openood(tmp_path, "cifar10", "test_cifar10")
    assert id_test.targets.tolist() == [0, 1, 2]
    assert [pixel(id_test, i) for i in range(3)] == [0, 1, 2]
    tin = openood(tmp_path, "cifar10", "test_tin")
    assert tin.targets.tolist() == [-1, -1, -1]
    assert pixel(tin, 2) == 102
    with pytest.raises(DataError, match="valid: texture"):
        scood(tmp_path, "cifar10", "mnist")


def test_imagenet10k_wnid_subsets(tmp_path):
    wnids = ["n00000002", "n00000001"]
    for w, wnid in enumerate(wnids):
        for k in (3, 1, 2, 0):
            image(tmp_path / "imagenet10k" / wnid / f"{wnid}_{k}.JPEG", 10 * w + k, fmt="JPEG")
        (tmp_path / "imagenet10k" / wnid / "notes.txt").write_text("not an image")
    (tmp_path / "imagenet_ood_test_1k_wnid_list.txt").write_text("\n".join(wnids) + "\n")
    (tmp_path / "imagenet_extra_1k_wnid_list.txt").write_text("n00000001\n")
    ood = imagenet_ood_test(tmp_path, per_class=2)
    # wnid order of the list, then the first files by sorted name.
    assert ood.paths == ["n00000002/n00000002_0.JPEG", "n00000002/n00000002_1.JPEG",
                         "n00000001/n00000001_0.JPEG", "n00000001/n00000001_1.JPEG"]  # fmt: skip
    assert ood.targets.tolist() == [-1] * 4
    extra = imagenet_extra(tmp_path)
    assert len(extra) == 4
    assert extra.paths[-1] == "n00000001/n00000001_3.JPEG"
    (tmp_path / "imagenet_extra_1k_wnid_list.txt").write_text("n00000009\n")
    with pytest.raises(DatasetNotFoundError, match="n00000009"):
        imagenet_extra(tmp_path)


def test_generated_ood_sets():
    g = gaussian_noise(200, (3, 8, 8), seed=0)
    values = g.images.float() / 255
    assert abs(values.mean().item() - 0.5) < 0.01
    assert abs(values.std().item() - 0.25) < 0.01
    assert torch.equal(g.images, gaussian_noise(200, (3, 8, 8), seed=0).images)
    u = uniform_noise(100, (1, 8, 8), seed=1).images.float() / 255
    assert abs(u.mean().item() - 0.5) < 0.02
    assert u.min() >= 0
    assert u.max() <= 1
    r = rademacher_noise(50, (3, 4, 4), seed=2)
    assert set(r.images.unique().tolist()) == {0, 255}
    b = blobs(20, (3, 16, 16), seed=3)
    assert set(b.images.unique().tolist()) <= {0, 255}
    assert torch.equal(b.images[:, 0], b.images[:, 2])  # black and white
    assert r.targets.tolist() == [-1] * 50
    with pytest.raises(DataError, match="shape"):
        uniform_noise(0)


def test_every_reader_module_registers_a_dataset():
    import pkgutil

    import oodlab.data.datasets as package

    registered = {entry.module for entry in DATASETS}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        assert f"oodlab.data.datasets.{info.name}" in registered, info.name


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("cifar10", {}, "data_batch_1"),
        ("cifar100_lt", {}, "cifar-100-python/train"),
        ("tinyimages_300k", {}, "300K_random_images.npy"),
        ("scood", {"ood_name": "tin"}, "test_tin.txt"),
        ("imagenet_lt", {"split": "val"}, "ImageNet_LT_val.txt"),
        ("openood", {}, "test_cifar10.txt"),
        ("waterbirds", {}, "metadata.csv"),
        ("celeba", {}, "list_attr_celeba.txt"),
        ("fgvc_aircraft", {}, "images_variant_trainval.txt"),
        ("stanford_cars", {}, "cars_train_annos.mat"),
        ("textures", {}, "dtd"),
        ("inaturalist", {}, "iNaturalist"),
        ("imagenet_ood_test", {}, "imagenet_ood_test_1k_wnid_list.txt"),
    ],
)
def test_missing_data_says_layout_and_source_in_one_line(tmp_path, name, kwargs, expected):
    with pytest.raises(DatasetNotFoundError) as info:
        DATASETS.create(name, data_root=tmp_path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert expected in message
    assert str(tmp_path) in message
    assert any(hint in message for hint in ("Get it", "get it", "release", "http", ".org"))


def test_mos_group_lists(tmp_path):
    image(tmp_path / "train" / "n01440764" / "x 1.JPEG", 9, fmt="JPEG")
    image(tmp_path / "train" / "n09246464" / "y.JPEG", 99, fmt="JPEG")
    lists = tmp_path / "imagenet2012_group_softmax_train_list.txt"
    lists.write_text("train/n01440764/x 1.JPEG 0 12\ntrain/n09246464/y.JPEG 2 1\n")
    data = DATASETS.create("mos_groups", list_file=lists, image_root=tmp_path)
    assert data.paths == ["train/n01440764/x 1.JPEG", "train/n09246464/y.JPEG"]
    assert data.targets.tolist() == [0, 2]
    assert data.extras["within_group"].tolist() == [12, 1]
    assert abs(pixel(data, 1) - 99) <= 2
    lists.write_text("train/a.JPEG 3\n")
    with pytest.raises(DataError, match=r"group_softmax_train_list\.txt:1"):
        DATASETS.create("mos_groups", list_file=lists, image_root=tmp_path)
