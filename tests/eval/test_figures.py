"""Figures: a re-evaluation removes exactly the figures of the one it replaces; per-score
folders; the drawn operating points are the metrics' own; training curves from a log;
class names with counts and shot groups in the per-class json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from oodlab.data.class_names import class_names, class_table, wnid_names
from oodlab.eval import metrics
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig
from oodlab.eval.figure_parts import operating_point, threshold_at_id_tpr
from oodlab.eval.figures import save_training_curves


def _run(toy, tmp_path, out, scores):
    n = len(toy.x_ood) // 2
    ood = {
        "far": TensorDataset(toy.x_ood[:n], torch.full((n,), -1)),
        "near": TensorDataset(0.5 * toy.x_id[:n] + 0.5 * toy.x_ood[:n], torch.full((n,), -1)),
    }
    return evaluate(
        toy.model,
        TensorDataset(toy.x_id, toy.y_id),
        ood,
        scores,
        near=["near"],
        far=["far"],
        class_counts=[50, 30, 20, 10],
        class_names=["cat", "dog", "fox", "owl"],
        extract_config=ExtractConfig(
            batch_size=32, device="cpu", cache_dir=tmp_path / "cache", quiet=True
        ),
        out_dir=out,
    )


def test_a_second_evaluation_removes_the_figures_it_replaces_and_nothing_else(toy, tmp_path):
    out = tmp_path / "run" / "eval"
    _run(toy, tmp_path, out, ["msp", "energy"])
    figures = out / "figures"
    assert (figures / "energy" / "roc.png").is_file()
    # files that belong to no evaluation of this folder: a note, and a figure of the older
    # loose layout for a score the previous results.json does not name
    (figures / "notes.txt").write_text("mine")
    (figures / "hist_knn.png").write_bytes(b"not ours")
    (tmp_path / "run" / "other.png").write_bytes(b"another file of the run")
    # a loose figure of the older layout for a score the previous evaluation had
    (figures / "roc_energy.png").write_bytes(b"stale")
    _run(toy, tmp_path, out, ["msp"])
    assert not (figures / "energy").exists()
    assert not (figures / "roc_energy.png").exists()
    assert (figures / "msp" / "hist.png").is_file()
    assert (figures / "notes.txt").read_text() == "mine"
    assert (figures / "hist_knn.png").is_file()
    assert (tmp_path / "run" / "other.png").is_file()
    index = json.loads((figures / "index.json").read_text())["files"]
    assert sorted(index) == [
        "flagged_per_class.png",
        "msp/hist.png",
        "msp/pr.png",
        "msp/roc.png",
        "overview.png",
    ]
    data = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in data["classes"]] == ["cat", "dog", "fox", "owl"]
    assert [c["train_count"] for c in data["classes"]] == [50, 30, 20, 10]
    assert [c["shot"] for c in data["classes"]] == ["many", "medium", "medium", "few"]
    intervals = data["scores"]["msp"]["intervals"]
    point = data["scores"]["msp"]["per_set"]["near"]["auroc"]
    assert (
        intervals["per_set"]["near"]["auroc"][0]
        <= point
        <= intervals["per_set"]["near"]["auroc"][1]
    )
    raw = np.load(out / "scores.npz", allow_pickle=False)
    assert sorted(raw.files) == ["msp::far", "msp::id", "msp::near"]


def test_operating_points_are_those_of_the_metrics():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 500), rng.normal(1.5, 1, 300)
    fpr, tpr, _ = roc_curve(
        np.r_[np.zeros(500), np.ones(300)], np.r_[a, b], drop_intermediate=False
    )
    assert operating_point(fpr, tpr)[0] == pytest.approx(metrics.fpr95(a, b))
    t = threshold_at_id_tpr(a)
    assert np.mean(a <= t) >= 0.95 > np.mean(a < t)  # the lowest threshold accepting 95%
    assert np.mean(b <= t) == pytest.approx(metrics.fpr95_id(a, b))


def test_training_curves_need_epoch_lines(tmp_path):
    log = tmp_path / "train_log.jsonl"
    assert not save_training_curves({"x": log}, tmp_path / "a.png")  # absent: nothing drawn
    lines = [
        {
            "scope": "epoch",
            "stage": "main",
            "epoch": e,
            "loss": 1.0 / (e + 1),
            "ce": 0.5,
            "id_accuracy": 0.5 + e / 10,
        }
        for e in range(3)
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert save_training_curves({"x": log}, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_names_from_the_dataset():
    class Bench:
        num_classes = 6
        name = "fmnist_lt_open"
        info = {"held_out_classes": [6, 7, 8, 9]}

    assert class_names(Bench()) == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal"]
    Bench.name, Bench.num_classes = "cifar10_lt", 10
    assert class_names(Bench())[:3] == ["airplane", "automobile", "bird"]
    Bench.name, Bench.num_classes = "cifar100_lt", 100
    assert class_names(Bench())[7] == "class 7"  # no meta file: indices, never an error
    table = class_table(3, ["a", "b"], None)  # wrong length: names fall back
    assert [c["name"] for c in table] == ["class 0", "class 1", "class 2"]


def test_wnids_map_to_names_when_the_mapping_file_is_present(tmp_path):
    (tmp_path / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
    )
    assert wnid_names(["n01443537", "n01440764", "n09999999"], tmp_path) == [
        "goldfish",
        "tench",
        "n09999999",
    ]
    assert wnid_names(["n01440764"], None) == ["n01440764"]


def test_many_series_per_class_become_a_heatmap(tmp_path, monkeypatch):
    from oodlab.eval import class_figures

    drawn = []
    monkeypatch.setattr(class_figures, "_heatmap", lambda *a: drawn.append(len(a[0])))
    classes = class_table(3, ["a", "b", "c"], [30, 10, 3])
    few = {f"s{i}": np.array([0.1, 0.2, 0.9]) for i in range(class_figures.MAX_SERIES)}
    class_figures.save_flagged_per_class(few, tmp_path / "bars.png", classes)
    assert drawn == []
    assert (tmp_path / "bars.png").is_file()
    many = {**few, "one more": np.array([0.0, 0.0, 1.0])}
    class_figures.save_flagged_per_class(many, tmp_path / "heat.png", classes)
    assert drawn == [class_figures.MAX_SERIES + 1]


def test_imagenet_class_names_come_from_the_class_folders_of_the_images(tmp_path):
    """An ImageFolder tree (1000 wnid folders, two of them chosen) behind a long-tail Subset:
    the labels' wnids are read from the image paths and mapped by ``words.txt``."""
    from PIL import Image
    from torch.utils.data import Subset

    from oodlab.data.datasets.image_lists import ImageListDataset
    from oodlab.data.datasets.imagenet_folders import imagenet_folder

    wnids = [f"n{index:08d}" for index in range(1000)]
    for wnid in wnids:
        (tmp_path / "train" / wnid).mkdir(parents=True)
    for wnid in (wnids[3], wnids[7]):
        Image.new("RGB", (4, 4)).save(tmp_path / "train" / wnid / f"{wnid}_1.JPEG")
    (tmp_path / "words.txt").write_text(f"{wnids[7]}\tseven, the seventh\n{wnids[3]}\tthree\n")
    dataset = imagenet_folder(tmp_path, "train", classes=[7, 3])

    class Bench:
        num_classes = 2
        name = "imagenet_lt"
        train = Subset(dataset, [1])

    assert class_names(Bench(), tmp_path) == ["seven", "three"]
    assert class_names(Bench(), None) == [wnids[7], wnids[3]]
    # a label whose images sit in two different wnid folders names no class: indices instead
    Bench.train = ImageListDataset(tmp_path, [f"{wnids[3]}/a.JPEG", f"{wnids[7]}/b.JPEG"], [0, 0])
    Bench.num_classes = 1
    assert class_names(Bench(), tmp_path) == ["class 0"]
