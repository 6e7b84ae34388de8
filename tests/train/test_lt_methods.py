"""End to end for the long-tailed methods: a few steps on generated LT data with outliers,
then `oodlab eval` with the method's own score; PASCL's branches, PATT's state on resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from oodlab.cli import main
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.data import build_benchmark
from oodlab.models.two_branch import TwoBranch
from oodlab.train.batches import with_transform
from oodlab.train.loop import train
from oodlab.train.recipes import build_recipe
from oodlab.train.run import default_scores_of_run, load_model_from_run, load_run_config
from oodlab.types import linear_head

BASE = {
    "data": {"benchmark": "synthetic", "batch_size": 16, "crop_padding": 2},
    "model": {"name": "small_cnn", "options": {"width": 0.25}},
    "train": {"epochs": 1, "lr": 0.003, "quiet": True, "device": "cpu"},
    "method": {"name": "oe"},
}


def config(*overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(BASE, overrides))


METHODS = {
    "energy_oe": ((), "energy"),
    "bin_disc": ((), "bin_disc"),
    "pascl": (("method.options.abf_epochs=1",), "msp"),
    "imood": ((), "bin_disc"),
    "imood_energy": (("method.options.detector=energy", "method.options.aux_loss=none"), "energy"),
    "imood_oe": (("method.options.detector=oe",), "msp"),
    "patt": (("method.options.views=batch",), "patt_energy"),
}


@pytest.mark.parametrize("label", sorted(METHODS))
def test_train_then_oodlab_eval_with_the_method_score(tmp_path, label, capsys):
    overrides, score = METHODS[label]
    run = tmp_path / label
    method = "imood" if label.startswith("imood") else label
    train(config(f"method.name={method}", *overrides), run)
    assert default_scores_of_run(load_run_config(run))[0] == score
    assert main(["eval", str(run), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    means = results["scores"][score]["means"]["all"]
    assert 0 <= means["auroc"] <= 1
    assert 0 <= means["fpr95"] <= 1
    assert score not in results["skipped"]


def test_pascl_fine_tunes_only_the_classification_branch(tmp_path):
    plain = train(config("method.name=pascl", "method.options.abf_epochs=0"), tmp_path / "a")
    tuned = train(config("method.name=pascl", "method.options.abf_epochs=2"), tmp_path / "b")
    assert plain.final_accuracy >= 0
    assert tuned.final_accuracy >= 0
    a, b = load_model_from_run(tmp_path / "a"), load_model_from_run(tmp_path / "b")
    assert isinstance(b, TwoBranch)
    # Stage 1 is the same in both runs and ABF leaves the OOD branch alone.
    for key, value in a.ood.state_dict().items():
        torch.testing.assert_close(b.ood.state_dict()[key], value, rtol=0, atol=0)
    # The convolutions are one set of weights; BatchNorm and the classifier are the branch's own.
    shared = dict(b.ood.named_parameters())
    own = {id(p) for p in b.classification_parameters()}
    for name, param in b.cls.named_parameters():
        assert (param is shared[name]) == (id(param) not in own), name
    head = linear_head(b.cls)
    own_modules = {
        name
        for name, module in b.cls.named_modules()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) or module is head
    }
    ood_state = b.ood.state_dict()
    changed = {
        k.rsplit(".", 1)[0]
        for k, v in b.cls.state_dict().items()
        if not torch.equal(v, ood_state[k])
    }
    assert changed
    assert changed <= own_modules
    # Evaluation classifies with the fine-tuned branch.
    assert main(["eval", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    results = json.loads((tmp_path / "b" / "eval" / "results.json").read_text())
    from oodlab.data.benchmarks import build_benchmark

    test = build_benchmark("synthetic", data_root=None, seed=0).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        cls_acc = (b.cls(x).argmax(1) == y).float().mean().item()
    assert results["id_accuracy"] == pytest.approx(cls_acc)


def test_patt_running_means_survive_a_resume(tmp_path: Path):
    patt = ("method.name=patt", "method.options.views=batch", "train.epochs=2")
    full = train(config(*patt), tmp_path / "full")
    # Roll a copy back to its epoch-1 checkpoint, as if killed during epoch 2, and resume.
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for suffix in (".pt", ".json"):
        (part / f"checkpoint.prev{suffix}").replace(part / f"checkpoint{suffix}")
    for name in ("model.pt", "model.json", "train_summary.json"):
        (part / name).unlink()
    state = torch.load(part / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert state["recipe"]["counts"].sum() > 0  # PATT's running class statistics are saved
    resumed = train(config(*patt), part, resume=True)
    assert resumed.final_accuracy == pytest.approx(full.final_accuracy)
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(part / "model.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def _imagenet_lt_layout(root: Path) -> None:
    """A tiny ImageNet-LT benchmark on disk: LT lists over JPEGs in train/ and val/, ImageNet-10K
    class folders for ImageNet-1k-OOD and ImageNet-Extra, and their wnid lists."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)

    def jpeg(path: Path, c: int) -> None:  # small files of another size than the views
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = torch.randint(0, 60, (30, 40, 3), generator=g, dtype=torch.uint8)
        pixels[:, :, c % 3] += 150
        Image.fromarray(pixels.numpy()).save(path, format="JPEG")

    lists = {"train": [], "test": []}
    for split, folder, counts in (("train", "train", (6, 4, 2)), ("test", "val", (2, 2, 2))):
        for c, n in enumerate(counts):
            for k in range(n):
                jpeg(root / folder / f"n0000000{c}" / f"{k}.JPEG", c)
                lists[split].append(f"{folder}/n0000000{c}/{k}.JPEG {c}\n")
    (root / "ImageNet_LT").mkdir()
    for split, lines in lists.items():
        (root / "ImageNet_LT" / f"ImageNet_LT_{split}.txt").write_text("".join(lines))
    for i, (wnid, listed) in enumerate((("n10000001", "ood_test"), ("n10000002", "extra"))):
        for k in range(4):
            jpeg(root / "imagenet10k" / wnid / f"{k}.JPEG", i + 3)
        (root / f"imagenet_{listed}_1k_wnid_list.txt").write_text(wnid + "\n")


def test_patt_with_its_imagenet_views_trains_on_imagenet_lt_lists(tmp_path: Path):
    _imagenet_lt_layout(tmp_path / "data")
    overrides = (
        "data.benchmark=imagenet_lt", f"data.data_root={tmp_path / 'data'}",
        "data.batch_size=4", "data.aux_batch_size=4", "data.crop_padding=0",
        "method.name=patt", "method.options.views=patt_imagenet", "method.options.image_size=32",
        "method.options.projection_dim=8",
    )  # fmt: skip
    cfg = config(*overrides)
    # The stage's transforms reach the image-list datasets: three normalised 32-px views.
    torch.manual_seed(0)
    bench = build_benchmark("imagenet_lt", tmp_path / "data")
    recipe = build_recipe("patt", cfg.method.options, bench.class_counts)
    (stage,) = recipe.stages(cfg)
    views, label = with_transform(bench.train, stage.transform)[5]
    assert label == 0
    assert [tuple(v.shape) for v in views] == [(3, 32, 32)] * 3
    assert min(float(v.min()) for v in views) < 0  # ImageNet statistics (no model.mean here)
    outlier, _ = with_transform(bench.aux, stage.aux_transform)[0]
    assert tuple(outlier.shape) == (3, 32, 32)
    assert float(outlier.min()) < 0
    # A model that normalises itself gets views and outliers in [0, 1].
    (own,) = recipe.stages(
        config(*overrides, "model.mean=[0.5,0.5,0.5]", "model.std=[0.5,0.5,0.5]")
    )
    views, _ = with_transform(bench.train, own.transform)[5]
    outlier, _ = with_transform(bench.aux, own.aux_transform)[0]
    assert all(0 <= float(v.min()) <= float(v.max()) <= 1 for v in (*views, outlier))
    train(cfg, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    # Three steps of 4 images, each updating the class statistics with views 2 and 3.
    assert state["recipe"]["counts"][:3].tolist() == [12, 8, 4]
    assert state["recipe"]["counts"].sum() == 24
    log = (tmp_path / "run" / "train_log.jsonl").read_text()
    assert "nan" not in log.lower()
