"""The ASCOOD / NPOS / MOS benchmark presets, built from tiny trees written here in the real
on-disk formats (metadata csv, CelebA txt, FGVC lists, Cars .mat, ImageNet folder trees,
CIFAR pickles, OpenOOD / ASCOOD image lists, image folders)."""

from __future__ import annotations

import hashlib
import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from oodlab.data import build_benchmark
from oodlab.data.benchmarks.synthesis import ASCOOD_FAR
from oodlab.data.datasets.ascood_lists import ASCOOD_NEAR
from oodlab.data.datasets.base import TensorImageDataset
from oodlab.data.datasets.imagenet_folders import NPOS_IMAGENET100
from oodlab.errors import ConfigError, DataError, DatasetNotFoundError


def encoded(value: int, size=(6, 5), fmt="JPEG") -> bytes:
    """A flat RGB image of ``value``, ``size`` = (width, height), encoded as ``fmt``."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def image(path, value=100, size=(6, 5), fmt="JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded(value, size, fmt))


def level(x: torch.Tensor) -> float:
    """Mean grey level of a float image in [0, 1], back in 0..255."""
    return float(x.mean()) * 255


def check_item(dataset, size, index=0):
    x, y = dataset[index]
    assert x.dtype == torch.float32
    assert tuple(x.shape) == (3, size, size)
    assert float(x.min()) >= 0
    assert float(x.max()) <= 1
    return x, y


def one_line_error(call, *fragments):
    with pytest.raises(DatasetNotFoundError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# ------------------------------------------------------------------ ASCOOD spurious setting


def write_waterbirds(root):
    base = root / "waterbird_complete95_forest2water2"
    rows = [(0, 0, 0), (0, 0, 1), (1, 0, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0),  # y, split, place
            (1, 1, 1), (0, 2, 0), (1, 2, 1), (1, 2, 0), (0, 2, 1)]  # fmt: skip
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    for i, (y, split, place) in enumerate(rows):
        name = f"{'002.Gull' if y else '001.Black'}/{i:03d}.jpg"
        image(base / name, 20 * i)
        lines.append(f"{i + 1},{name},{y},{split},{place},/p/{i}.jpg")
    (base / "metadata.csv").write_text("\n".join(lines) + "\n")
    for k, where in enumerate(("water", "land", "water")):
        image(root / "placesbg" / where / f"bg_{k}.jpg", 200 + k)


def test_waterbirds_original_release_spurious_and_far_sets(tmp_path):
    write_waterbirds(tmp_path)
    bench = build_benchmark("waterbirds", tmp_path)
    assert (bench.num_classes, bench.image_shape) == (2, (3, 224, 224))
    assert bench.train.targets.tolist() == [0, 0, 1, 0, 1, 0]  # split 0, file order
    assert bench.test.targets.tolist() == [0, 1, 1, 0]  # split 2 (val row left out)
    assert bench.class_counts == [4, 2]
    assert list(bench.ood) == ["waterbirds_ood"]
    assert bench.near == ("waterbirds_ood",)
    assert bench.ood["waterbirds_ood"].targets.tolist() == [-1, -1, -1]
    assert bench.far == ()
    assert bench.info["far_ood_not_found"] == list(ASCOOD_FAR)
    x, _ = check_item(bench.test, 224)
    assert abs(level(x) - 140) < 3  # test row 0 is metadata row 7: 20 * 7
    check_item(bench.train, 224)
    check_item(bench.ood["waterbirds_ood"], 224)

    # Far-OOD sets appear when present: Textures by its OpenOOD list, SUN by its MOS folder.
    lists = tmp_path / "benchmark_imglist" / "cifar100"
    lists.mkdir(parents=True)
    image(tmp_path / "images_classic" / "texture" / "banded" / "b_0.jpg", 50, size=(40, 30))
    image(tmp_path / "images_classic" / "texture" / "banded" / "b_1.jpg", 60, size=(40, 30))
    (lists / "test_texture.txt").write_text("texture/banded/b_0.jpg 0\ntexture/banded/b_1.jpg 0\n")
    image(tmp_path / "SUN" / "sun_0.jpg", 70)
    bench = build_benchmark("waterbirds", tmp_path)
    assert bench.far == ("sun", "texture")
    assert bench.info["far_ood_not_found"] == ["ninco", "openimage_o", "inaturalist"]
    assert {k: len(v) for k, v in bench.ood.items()} == {
        "waterbirds_ood": 3,
        "sun": 1,
        "texture": 2,
    }
    assert bench.ood["texture"].targets.tolist() == [-1, -1]
    x, _ = check_item(bench.ood["texture"], 224, 1)
    assert abs(level(x) - 60) < 3
    one_line_error(
        lambda: build_benchmark("waterbirds", tmp_path, far_ood=["ninco"]),
        "benchmark_imglist/imagenet200/test_ninco.txt", "OpenOOD",
    )  # fmt: skip
    with pytest.raises(DataError, match="valid: ninco"):
        build_benchmark("waterbirds", tmp_path, far_ood=["svhn"])


def test_waterbirds_missing_spurious_set_or_data_is_one_line(tmp_path):
    write_waterbirds(tmp_path)
    for path in sorted((tmp_path / "placesbg").rglob("*.jpg")):
        path.unlink()
    for folder in sorted((tmp_path / "placesbg").iterdir()):
        folder.rmdir()
    (tmp_path / "placesbg").rmdir()
    one_line_error(lambda: build_benchmark("waterbirds", tmp_path), "placesbg", "Spurious_OOD",
                   "benchmark_imglist/waterbirds/waterbirds_{train,test}.txt")  # fmt: skip
    one_line_error(
        lambda: build_benchmark("waterbirds", tmp_path, source="ascood"),
        "benchmark_imglist/waterbirds", "images_largescale/waterbirds/", "sudarshanregmi/ASCOOD",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"source: got 'openood', expected one of \['auto'"):
        build_benchmark("waterbirds", tmp_path, source="openood")  # refused by its signature


def test_celeba_original_release_bald_men_are_the_spurious_set(tmp_path):
    root = tmp_path / "celeba"
    people = [  # Bald, Gray_Hair, Male, partition
        (-1, 1, -1, 0), (-1, -1, 1, 0), (1, -1, 1, 0), (-1, 1, 1, 0), (-1, -1, -1, 0),
        (-1, 1, -1, 1), (1, 1, 1, 1), (-1, -1, 1, 2), (-1, 1, 1, 2), (1, -1, 1, 2),
        (1, -1, -1, 2),  # a bald woman stays ID
    ]  # fmt: skip
    attr = [str(len(people)), "Bald Gray_Hair Male"]
    for i, (bald, gray, male, _) in enumerate(people):
        attr.append(f"{i + 1:06d}.jpg {bald:2d} {gray:2d} {male:2d}")
        image(root / "img_align_celeba" / f"{i + 1:06d}.jpg", 10 * i, size=(18, 22))
    (root / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{i + 1:06d}.jpg {p[3]}\n" for i, p in enumerate(people))
    )
    bench = build_benchmark("celeba", tmp_path)
    assert (bench.num_classes, bench.image_shape) == (2, (3, 224, 224))
    assert bench.train.targets.tolist() == [1, 0, 1, 0]  # partition 0 without the bald man
    assert bench.class_counts == [2, 2]
    assert bench.test.targets.tolist() == [0, 1, 0]
    near = bench.ood["celeba_ood"]
    assert near.paths == [f"img_align_celeba/{i:06d}.jpg" for i in (3, 7, 10)]  # all partitions
    assert near.targets.tolist() == [-1, -1, -1]
    x, _ = check_item(near, 224, 2)
    assert abs(level(x) - 90) < 3


# ------------------------------------------------------------- ASCOOD's own release (lists)


@pytest.mark.parametrize(
    ("name", "num_classes", "size"),
    [("waterbirds", 2, 224), ("celeba", 2, 224), ("aircraft", 90, 448), ("cars", 150, 448)],
)
def test_ascood_release_lists(tmp_path, name, num_classes, size):
    lists = tmp_path / "data" / "benchmark_imglist" / name
    lists.mkdir(parents=True)
    images = tmp_path / "data" / "images_largescale"
    splits = {"train": [0, 1, 1, num_classes - 1], "val": [0], "test": [1, 0]}
    for split, labels in splits.items():
        rows = []
        for i, label in enumerate(labels):
            image(images / name / split / f"{i}.jpg", 10 + i)
            rows.append(f"{split}/{i}.jpg {label}")
        (lists / f"{name}_{split}.txt").write_text("\n".join(rows) + "\n")
    near_list, near_dir = ASCOOD_NEAR[name]
    for i in range(3):
        image(images / near_dir / "ood" / f"{i}.jpg", 200 + 10 * i)
    (lists / f"{near_list}.txt").write_text("".join(f"ood/{i}.jpg 0\n" for i in range(3)))

    bench = build_benchmark(name, tmp_path)
    assert bench.info["source"].startswith("ASCOOD's lists")
    assert (bench.num_classes, bench.image_shape) == (num_classes, (3, size, size))
    assert bench.train.targets.tolist() == splits["train"]
    assert len(bench.class_counts) == num_classes
    assert sum(bench.class_counts) == 4
    assert bench.class_counts == torch.bincount(torch.tensor(splits["train"]),
                                                minlength=num_classes).tolist()  # fmt: skip
    assert bench.test.targets.tolist() == [1, 0]
    near = bench.ood[f"{name}_ood"]
    assert bench.near == (f"{name}_ood",)
    assert near.targets.tolist() == [-1, -1, -1]
    x, _ = check_item(near, size, 2)
    assert abs(level(x) - 220) < 3  # read from images_largescale/<near_dir>/
    # OOD validation set (OpenImage-O val, OpenOOD's imagenet200 list): optional.
    assert bench.ood_val is None
    assert bench.info["ood_val"].startswith("not found")
    assert "benchmark_imglist/imagenet200/val_openimage_o.txt" in bench.info["ood_val"]
    val_list = tmp_path / "data" / "benchmark_imglist" / "imagenet200" / "val_openimage_o.txt"
    val_list.parent.mkdir(parents=True)
    val_list.write_text("".join(f"openimage_o/val/{i}.jpg 0\n" for i in range(5)))
    assert build_benchmark(name, tmp_path).ood_val is None  # list without its images
    for i in range(5):
        image(images / "openimage_o" / "val" / f"{i}.jpg", 100 + i)
    bench = build_benchmark(name, tmp_path)
    assert len(bench.ood_val) == 5
    assert bench.ood_val.targets.tolist() == [-1] * 5
    assert "(5 images)" in bench.info["ood_val"]
    assert "openimage_o" not in bench.ood  # never a test set
    check_item(bench.ood_val, size, 4)
    if name in ("aircraft", "cars"):
        with pytest.raises(DataError, match="id_classes needs source='original'"):
            build_benchmark(name, tmp_path, source="ascood", id_classes=range(10))
    (lists / f"{name}_train.txt").write_text(f"train/0.jpg {num_classes}\n")
    with pytest.raises(DataError, match=rf"labels must lie in \[0, {num_classes}\)"):
        build_benchmark(name, tmp_path)


# ------------------------------------------------------------------ ASCOOD fine-grained setting


def write_aircraft(root, train_per_variant=2):
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = [f"Model-{i}" for i in range(100)]
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    jpeg = encoded(90)
    for split, per_variant in (("trainval", train_per_variant), ("test", 1)):
        lines = []
        for v, variant in enumerate(variants):
            for k in range(per_variant):
                image_id = f"{split[:2]}{v:03d}{k}"
                (data / "images" / f"{image_id}.jpg").write_bytes(jpeg)
                lines.append(f"{image_id} {variant}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")


def test_aircraft_original_release_held_out_variants(tmp_path):
    write_aircraft(tmp_path)
    bench = build_benchmark("aircraft", tmp_path)
    chosen = sorted(np.random.default_rng(0).permutation(100)[:90].tolist())
    assert (bench.num_classes, bench.image_shape) == (90, (3, 448, 448))
    assert bench.info["id_classes"] == chosen
    assert len(bench.train) == 180
    assert bench.class_counts == [2] * 90
    assert len(bench.test) == 90
    assert sorted(bench.test.targets.tolist()) == list(range(90))
    near = bench.ood["aircraft_ood"]
    assert len(near) == 10
    assert near.targets.tolist() == [-1] * 10
    assert set(near.extras["variant"].tolist()) == set(range(100)) - set(chosen)
    assert all(p.startswith("images/te") for p in near.paths)  # held-out *test* images
    x, _ = check_item(bench.test, 448)
    assert abs(level(x) - 90) < 3
    check_item(bench.train, 448)
    other = build_benchmark("aircraft", tmp_path, seed=1)
    assert other.info["id_classes"] != chosen  # the seed draws the split
    own = build_benchmark("aircraft", tmp_path, id_classes=range(50))
    assert own.num_classes == 50
    assert len(own.ood["aircraft_ood"]) == 50


def test_cars_original_release_held_out_classes(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "stanford_cars"
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
              ("class", "O"), ("fname", "O")]  # fmt: skip
    (root / "devkit").mkdir(parents=True)
    jpeg = encoded(30)
    for split, annos in (("train", "devkit/cars_train_annos.mat"),
                               ("test", "cars_test_annos_withlabels.mat")):  # fmt: skip
        records = np.zeros(196, dtype=fields)
        (root / f"cars_{split}").mkdir()
        for i in range(196):
            records[i] = (0, 0, 4, 4, i + 1, f"{i:05d}.jpg")
            (root / f"cars_{split}" / f"{i:05d}.jpg").write_bytes(jpeg)
        savemat(root / annos, {"annotations": records})
    bench = build_benchmark("cars", tmp_path)
    chosen = sorted(np.random.default_rng(0).permutation(196)[:150].tolist())
    assert (bench.num_classes, bench.image_shape) == (150, (3, 448, 448))
    assert bench.info["id_classes"] == chosen
    assert bench.class_counts == [1] * 150
    assert len(bench.train) == 150
    assert bench.train.paths[0].startswith("cars_train/")
    assert len(bench.test) == 150
    assert bench.test.paths[0].startswith("cars_test/")
    near = bench.ood["cars_ood"]
    assert len(near) == 46
    assert set(near.extras["class"].tolist()) == set(range(196)) - set(chosen)
    x, _ = check_item(near, 448)
    assert abs(level(x) - 30) < 3


# ------------------------------------------------------------------------ NPOS / MOS ImageNet

WNIDS = [f"n{1440764 + 37 * i:08d}" for i in range(1000)]  # sorted like the real ones


def write_mos_ood(root):
    image(root / "iNaturalist" / "a.jpg", 11)
    image(root / "iNaturalist" / "b.jpg", 12)
    image(root / "iNaturalist" / "c.jpg", 13)
    image(root / "SUN" / "a.jpg", 21)
    image(root / "SUN" / "b.jpg", 22)
    image(root / "Places" / "a.jpg", 31)
    image(root / "Places" / "b.jpg", 32)
    image(root / "dtd" / "images" / "banded" / "banded_0001.jpg", 41)
    image(root / "dtd" / "images" / "zigzagged" / "zigzagged_0001.jpg", 42)


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    """train/ and val/ with the 1000 class folders: one image each, two in NPOS's classes."""
    root = tmp_path_factory.mktemp("imagenet")
    chosen = set(NPOS_IMAGENET100)
    for index, wnid in enumerate(WNIDS):
        jpeg = encoded(index % 256)
        for split in ("train", "val"):
            (root / split / wnid).mkdir(parents=True)
            (root / split / wnid / f"{wnid}_1.JPEG").write_bytes(jpeg)
        if index in chosen:
            (root / "train" / wnid / f"{wnid}_0.JPEG").write_bytes(jpeg)
    (root / "train" / WNIDS[0] / "README.txt").write_text("not an image")
    write_mos_ood(root)
    return root


def test_imagenet100_npos_classes_and_mos_ood_sets(imagenet_root):
    bench = build_benchmark("imagenet100", imagenet_root)
    assert (bench.num_classes, bench.image_shape) == (100, (3, 224, 224))
    assert len(bench.train) == 200
    assert len(bench.test) == 100
    assert bench.train.targets.tolist() == [k for k in range(100) for _ in range(2)]
    assert bench.class_counts == [2] * 100
    for dataset in (bench.train, bench.test):  # label k = Appendix A's k-th class folder
        for path, label in zip(dataset.paths, dataset.targets.tolist()):
            assert path.split("/")[0] == WNIDS[NPOS_IMAGENET100[label]]
    assert bench.train.paths[:2] == [f"{WNIDS[125]}/{WNIDS[125]}_0.JPEG",
                                     f"{WNIDS[125]}/{WNIDS[125]}_1.JPEG"]  # fmt: skip
    assert list(bench.ood) == ["inaturalist", "sun", "places", "textures"]
    assert bench.far == tuple(bench.ood)
    assert bench.near == ()
    assert {k: len(v) for k, v in bench.ood.items()} == {
        "inaturalist": 3, "sun": 2, "places": 2, "textures": 2,
    }  # fmt: skip
    assert all(v.targets.tolist() == [-1] * len(v) for v in bench.ood.values())
    x, _ = check_item(bench.test, 224, 1)
    assert abs(level(x) - NPOS_IMAGENET100[1] % 256) < 3
    check_item(bench.train, 224)
    clip = build_benchmark("imagenet100", imagenet_root, preprocess="clip", ood_cap=1)
    check_item(clip.train, 224)
    assert {k: len(v) for k, v in clip.ood.items()} == dict.fromkeys(bench.ood, 1)
    again = build_benchmark("imagenet100", imagenet_root, ood_cap=1)
    assert again.ood["inaturalist"].paths == clip.ood["inaturalist"].paths  # seeded


def test_imagenet1k_mos_protocol(imagenet_root):
    bench = build_benchmark("imagenet1k", imagenet_root, ood_sets=["inaturalist", "textures"])
    assert (bench.num_classes, bench.image_shape) == (1000, (3, 480, 480))
    assert bench.test.targets.tolist() == list(range(1000))  # sorted-wnid order
    assert len(bench.train) == 1100
    assert bench.class_counts[125] == 2
    assert sum(bench.class_counts) == 1100
    assert list(bench.ood) == ["inaturalist", "textures"]
    x, _ = check_item(bench.test, 480, 7)
    assert abs(level(x) - 7) < 3
    check_item(bench.train, 480)
    check_item(bench.ood["textures"], 480)
    with pytest.raises(DataError, match="valid: inaturalist, sun, places, textures"):
        build_benchmark("imagenet1k", imagenet_root, ood_sets=["openimage_o"])
    small = build_benchmark("imagenet1k", imagenet_root, image_size=32, id_cap=5)  # quick checks
    assert (small.image_shape, len(small.test), small.info["id_cap"]) == ((3, 32, 32), 5, 5)
    labels = small.test.targets.tolist()
    assert labels == sorted(labels)  # a subset, in list order
    assert len(set(labels)) == 5
    assert build_benchmark("imagenet1k", imagenet_root, id_cap=5).test.paths == small.test.paths
    check_item(small.test, 32)
    check_item(small.train, 32)
    for bad in ({"image_size": 0}, {"id_cap": 0}):
        with pytest.raises(DataError, match="positive integer"):
            build_benchmark("imagenet1k", imagenet_root, **bad)


def test_imagenet_presets_missing_folders_are_one_line(tmp_path, imagenet_root):
    ood_root = tmp_path / "ood"
    write_mos_ood(ood_root)
    for path in sorted((ood_root / "Places").iterdir()):
        path.unlink()
    (ood_root / "Places").rmdir()
    one_line_error(lambda: build_benchmark("imagenet100", imagenet_root, ood_root=ood_root),
                   "Places not found", "large_scale_ood")  # fmt: skip
    partial = tmp_path / "partial"
    for wnid in WNIDS[:999]:
        (partial / "imagenet" / "train" / wnid).mkdir(parents=True)
    one_line_error(lambda: build_benchmark("imagenet1k", partial),
                   "found 999", "image-net.org")  # fmt: skip


# ---------------------------------------------------------- ASCOOD conventional (OpenOOD v1.5)


def write_cifar(root, name):
    """Pickled batches (bytes keys) and their MD5 table; labels cover every class."""
    rng = np.random.default_rng(0)
    num_classes = 10 if name == "cifar10" else 100
    folder, files = (
        ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"])
        if name == "cifar10"
        else ("cifar-100-python", ["train", "test"])
    )
    (root / folder).mkdir(parents=True)
    checksums = {}
    for file in files:
        n = 2 * num_classes if file in ("train", "data_batch_1") else num_classes // 2
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [i % num_classes for i in range(n)]
        key = b"labels" if name == "cifar10" else b"fine_labels"
        payload = pickle.dumps({b"data": data, key: labels}, protocol=2)
        (root / folder / file).write_bytes(payload)
        checksums[f"{folder}/{file}"] = hashlib.md5(payload).hexdigest()
    return checksums


def write_openood(root, name, with_isun=True):
    other = "cifar100" if name == "cifar10" else "cifar10"
    lists = root / "benchmark_imglist" / name
    lists.mkdir(parents=True, exist_ok=True)
    for k, ood in enumerate((other, "tin", "mnist", "svhn", "texture", "places365")):
        size = (40, 30) if ood == "texture" else (32, 32)
        for i in range(3):
            image(root / "images_classic" / ood / "test" / f"{i}.png", 10 * k + i, size, "PNG")
        (lists / f"test_{ood}.txt").write_text("".join(f"{ood}/test/{i}.png 0\n" for i in range(3)))
    for i in range(4):  # OpenOOD's OOD validation set for CIFAR: TIN val
        image(root / "images_classic" / "tin" / "val" / f"{i}.png", 90 + i, (64, 64), "PNG")
    (lists / "val_tin.txt").write_text("".join(f"tin/val/{i}.png 0\n" for i in range(4)))
    if with_isun:
        (root / "benchmark_imglist" / "cifar10").mkdir(exist_ok=True)
        image(root / "images_classic" / "iSUN" / "iSUN_0.jpeg", 77, (36, 36))
        (root / "benchmark_imglist" / "cifar10" / "test_isun.txt").write_text("iSUN_0.jpeg -1\n")


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_openood_sets(tmp_path, name):
    checksums = write_cifar(tmp_path, name)
    write_openood(tmp_path, name)
    num_classes = 10 if name == "cifar10" else 100
    other = "cifar100" if name == "cifar10" else "cifar10"
    bench = build_benchmark(name, tmp_path, checksums=checksums)
    assert (bench.num_classes, bench.image_shape) == (num_classes, (3, 32, 32))
    assert isinstance(bench.train, TensorImageDataset)
    assert bench.train.transform is None
    assert len(bench.train) == 2 * num_classes + (4 * num_classes // 2 if name == "cifar10" else 0)
    assert len(bench.test) == num_classes // 2
    assert len(bench.class_counts) == num_classes
    assert bench.near == (other, "tin")
    assert bench.far == ("mnist", "svhn", "texture", "places365", "isun")
    assert {len(v) for k, v in bench.ood.items() if k != "isun"} == {3}
    assert all(v.targets.tolist() == [-1] * len(v) for v in bench.ood.values())
    x, _ = check_item(bench.ood["isun"], 32)  # images under images_classic/iSUN/
    assert abs(level(x) - 77) < 3
    x, _ = check_item(bench.ood["texture"], 32, 2)  # Resize(32) + CenterCrop(32) of 40x30
    assert abs(level(x) - 42) < 3
    assert len(bench.ood_val) == 4  # val_tin.txt
    assert bench.ood_val.targets.tolist() == [-1] * 4
    assert "val_tin.txt (4 images)" in bench.info["ood_val"]
    check_item(bench.ood_val, 32, 3)
    capped = build_benchmark(name, tmp_path, checksums=checksums, ood_cap=2,
                             ood_sets=["svhn", "isun", "places365", "texture"])  # fmt: skip
    assert {k: len(v) for k, v in capped.ood.items()} == {
        "svhn": 2, "isun": 1, "places365": 2, "texture": 2,
    }  # fmt: skip
    assert capped.near == ()
    assert len(capped.far) == 4
    assert len(capped.ood_val) == 4  # never capped
    with pytest.raises(DataError, match="unknown OOD set 'lsun'"):
        build_benchmark(name, tmp_path, checksums=checksums, ood_sets=["lsun"])
    (tmp_path / "benchmark_imglist" / "cifar10" / "test_isun.txt").unlink()
    (tmp_path / "benchmark_imglist" / name / "val_tin.txt").unlink()
    assert build_benchmark(name, tmp_path, checksums=checksums).ood_val is None  # optional
    assert "isun" not in build_benchmark(name, tmp_path, checksums=checksums).ood  # optional
    one_line_error(
        lambda: build_benchmark(name, tmp_path, checksums=checksums, ood_sets=["isun"]),
        "test_isun.txt", "OpenOOD",
    )  # fmt: skip


# ------------------------------------------------------------------ missing data, every preset


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("waterbirds", ("metadata.csv", "group_DRO", "benchmark_imglist/waterbirds")),
        ("celeba", ("list_attr_celeba.txt", "mmlab", "celeba_spurious_ood.txt")),
        ("aircraft", ("variants.txt", "fgvc-aircraft", "aircraft_finegrained_ood.txt")),
        ("cars", ("cars_train_annos.mat", "Stanford Cars", "cars_finegrained_ood.txt")),
        ("imagenet100", ("train/<wnid>/*.JPEG", "image-net.org")),
        ("imagenet1k", ("train/<wnid>/*.JPEG", "image-net.org")),
        ("cifar10", ("cifar-10-batches-py/data_batch_1", "cs.toronto.edu")),
        ("cifar100", ("cifar-100-python/train", "cs.toronto.edu")),
    ],
)
def test_missing_data_is_one_line_naming_layout_and_source(tmp_path, name, fragments):
    one_line_error(lambda: build_benchmark(name, tmp_path), *fragments)
    one_line_error(lambda: build_benchmark(name, None), "data")


def test_imagenet_presets_take_openood_openimage_o_val_for_tuning(tmp_path, imagenet_root):
    ood_root = tmp_path / "ood"
    write_mos_ood(ood_root)
    bench = build_benchmark("imagenet1k", imagenet_root, ood_root=ood_root)
    assert bench.ood_val is None
    assert "benchmark_imglist/imagenet/val_openimage_o.txt" in bench.info["ood_val"]
    val_list = ood_root / "data" / "benchmark_imglist" / "imagenet" / "val_openimage_o.txt"
    val_list.parent.mkdir(parents=True)
    val_list.write_text("".join(f"openimage_o/val/{i}.jpg 0\n" for i in range(3)))
    for i in range(3):
        image(ood_root / "data" / "images_largescale" / "openimage_o" / "val" / f"{i}.jpg", 60 + i)
    for name in ("imagenet1k", "imagenet100"):
        bench = build_benchmark(name, imagenet_root, ood_root=ood_root)
        assert len(bench.ood_val) == 3
        assert bench.ood_val.targets.tolist() == [-1] * 3
        assert "openimage_o" not in bench.ood  # never a test set
        x, _ = check_item(bench.ood_val, bench.image_shape[1], 1)
        assert abs(level(x) - 61) < 3
