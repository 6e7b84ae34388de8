"""Protocol presets: their tables are well-formed, the comparison is ours − paper, and
``oodlab eval --checkpoint F --protocol NAME`` runs end to end on generated dataset trees."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from oodlab.cli import main
from oodlab.eval.metrics import ood_metrics
from oodlab.eval.protocols import PROTOCOLS, get_protocol, paper_comparison, paper_results
from oodlab.scores import SCORES
from oodlab.scores._spec import parse_score_specs, spec_name

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "models"))
import official_layouts as official  # the released layouts' builders  # noqa: E402


def _helpers(relative: str):
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_"), TESTS / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_protocol_names_registered_scores_and_existing_rows():
    metric_keys = set(ood_metrics(np.array([0.0, 1.0]), np.array([0.5, 2.0]))) | {"id_accuracy"}
    tables = paper_results()["tables"]
    for entry in PROTOCOLS:
        protocol = get_protocol(entry.name)
        for spec in parse_score_specs(",".join(protocol.scores)):
            assert spec_name(spec) in SCORES, (protocol.name, spec)
        if protocol.table is None:
            assert "not be found" in protocol.notes
            continue
        table = tables[protocol.table]
        assert table["source"]
        assert table["label"]
        for row in protocol.rows.values():
            assert row in table["rows"], (protocol.name, row)
        for key in table["columns"]:
            metric = key.partition(".")[2] or key
            assert metric in metric_keys, (protocol.table, key)
        for row in table["rows"].values():
            assert set(row) <= set(table["columns"]), protocol.table


def test_comparison_is_ours_minus_paper_in_percent():
    protocol = get_protocol("pascl_cifar10_lt")
    result = SimpleNamespace(
        id_accuracy=0.75,
        scores={
            "msp": SimpleNamespace(
                means={"all": {"auroc": 0.9, "aupr_out": 0.8, "fpr95_closest": 0.4}}
            ),
            "energy": SimpleNamespace(means={"all": {}}),
        },
    )
    comparison = paper_comparison(protocol, result)
    (entry,) = comparison["entries"]  # energy has no row in the PASCL table
    assert entry["row"] == "PASCL"
    # PASCL Table 1 (EAT re-print): 90.99 / 89.24 / 33.36 / 77.08
    assert entry["difference"]["all.auroc"] == pytest.approx(90.0 - 90.99)
    assert entry["difference"]["all.aupr_out"] == pytest.approx(80.0 - 89.24)
    assert entry["difference"]["all.fpr95_closest"] == pytest.approx(40.0 - 33.36)
    assert entry["difference"]["id_accuracy"] == pytest.approx(75.0 - 77.08)
    other = paper_comparison(protocol, result, paper_row="OE")
    assert [e["row"] for e in other["entries"]] == ["OE", "OE"]


@pytest.fixture
def fast_eval(monkeypatch) -> Iterator[None]:
    """One thread (tiny batches on a narrow net: more only add overhead, on a busy CPU a lot)
    and no PNG figures (most of an end-to-end run's time; tests/eval/test_figures.py tests
    them)."""
    monkeypatch.setattr("oodlab.eval.figures.write_evaluation_figures", lambda *a, **k: None)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _check_paper_rows(out: Path, stdout: str, score: str, row: str, label: str) -> None:
    data = json.loads((out / "results.json").read_text())
    comparison = data["paper_comparison"]
    (entry,) = [e for e in comparison["entries"] if e["score"] == score]
    assert entry["row"] == row
    table = paper_results()["tables"][comparison["table"]]["rows"][row]
    for key, paper in table.items():
        group, _, metric = key.partition(".")
        means = data["scores"][score]["means"]
        if key != "id_accuracy" and group not in means:  # e.g. no far-OOD set in the tree
            assert entry["difference"][key] is None
            continue
        ours = 100 * (data["id_accuracy"] if key == "id_accuracy" else means[group][metric])
        assert entry["difference"][key] == pytest.approx(ours - paper)
    assert label in stdout
    assert f"| paper ({row}) |" in stdout
    assert "| difference (ours − paper) |" in stdout
    assert f"## Paper: {label}" in (out / "results.md").read_text()


def test_pascl_protocol_end_to_end_on_cifar10_lt_files(tmp_path, monkeypatch, capsys, fast_eval):
    cifar = _helpers("data/test_cifar_lt.py")
    checksums, _ = cifar.write_cifar(tmp_path, per_class=4, test_per_class=1)
    monkeypatch.setattr("oodlab.data.datasets.cifar.MD5", checksums)
    aux = (np.arange(8 * 32 * 32 * 3) % 251).reshape(8, 32, 32, 3).astype(np.uint8)
    np.save(tmp_path / "300K_random_images.npy", aux)
    sets = ("texture", "svhn", "cifar100", "tin", "lsun", "places365")
    cifar.write_scood(tmp_path, "cifar10", sets, [-1, 3, -1])
    body = official.kuangliu_state(10, classifier="linear", base=8)  # narrow: a fast test
    g = torch.Generator().manual_seed(0)
    state = {f"module.{k}": v for k, v in body.items()}
    state |= {"module.projection.0.weight": torch.randn(64, 64, generator=g) / 8,
              "module.projection.0.bias": torch.zeros(64),
              "module.projection.2.weight": torch.randn(128, 64, generator=g) / 8,
              "module.projection.2.bias": torch.zeros(128)}  # fmt: skip
    path = tmp_path / "pascl.pth"
    torch.save({"model": state}, path)
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(path), "--protocol", "pascl_cifar10_lt", "--data-root",
            str(tmp_path), "--benchmark-set", "n_aux=8", "--benchmark-set", "imbalance_ratio=0.5",
            "--device", "cpu", "--quiet", "--cache-dir", str(tmp_path / "c"), "--out",
            str(out)]  # fmt: skip
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "checkpoint format: pascl (detected)" in stdout
    _check_paper_rows(out, stdout, "msp", "PASCL", "PASCL Table 1, CIFAR10-LT average")


@pytest.mark.slow
def test_ascood_protocol_end_to_end_on_waterbirds_files(tmp_path, capsys, fast_eval):
    synthesis = _helpers("data/test_synthesis_benchmarks.py")
    synthesis.write_waterbirds(tmp_path)
    inner = official.torchvision_state(2, bottleneck=False)
    state = {f"backbone.{k}": v for k, v in inner.items()} | {"sigma": torch.tensor(0.5)}
    path = tmp_path / "ascood.ckpt"
    torch.save(state, path)
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(path), "--protocol", "ascood_waterbirds", "--data-root",
            str(tmp_path), "--device", "cpu", "--quiet", "--cache-dir", str(tmp_path / "c"),
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "checkpoint format: ascood (detected)" in stdout
    assert "mean [0.485, 0.456, 0.406]" in stdout  # ImageNet statistics, ASCOOD's preprocessor
    _check_paper_rows(out, stdout, "odin", "ASCOOD", "ASCOOD Table 1 (v1), Waterbirds")


def _openood_cifar10_tree(root: Path, monkeypatch, per_class: int) -> None:
    """CIFAR-10's pickle batches (``per_class`` training images per class, one test image)
    and OpenOOD v1.5's ``benchmark_imglist/cifar10/test_*.txt`` + ``images_classic/`` (3 images
    per set, iSUN from ASCOOD's list)."""
    cifar = _helpers("data/test_cifar_lt.py")
    checksums, _ = cifar.write_cifar(root, per_class=per_class, test_per_class=1)
    monkeypatch.setattr("oodlab.data.datasets.cifar.MD5", checksums)
    _helpers("data/test_synthesis_benchmarks.py").write_openood(root, "cifar10")


def _eval_argv(path: Path, protocol: str, root: Path, *extra: str) -> list[str]:
    return ["eval", "--checkpoint", str(path), "--protocol", protocol, "--data-root", str(root),
            *extra, "--device", "cpu", "--quiet", "--cache-dir", str(root / "c"), "--out",
            str(root / "eval")]  # fmt: skip


def test_openood_resnet18_32x32_protocol_end_to_end_on_cifar10_files(
    tmp_path, monkeypatch, capsys, fast_eval
):
    """OpenOOD v1.5's CIFAR-10 ``ResNet18_32x32`` ``.ckpt`` (``conv1 … layer{i} … fc``) on the
    OpenOOD image-list tree, with ASCOOD Table 6's ODIN / i-ODIN rows. The stages are narrowed
    (``base=8`` instead of 64: the same keys, a fast test)."""
    _openood_cifar10_tree(tmp_path, monkeypatch, per_class=2)
    path = tmp_path / "best.ckpt"
    torch.save(official.kuangliu_state(10, classifier="fc", base=8), path)
    assert main(_eval_argv(path, "openood_cifar10_odin", tmp_path)) == 0
    stdout = capsys.readouterr().out
    assert "checkpoint format: openood_resnet18_32x32 (detected)" in stdout
    assert "mean [0.4914, 0.4822, 0.4465]" in stdout  # OpenOOD's CIFAR-10 statistics
    label = "ASCOOD Table 6, CIFAR-10: ODIN vs i-ODIN on the OpenOOD v1.5 checkpoint"
    data = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert data["scores"]["odin"]["params"]["temperature"] == 1000  # OpenOOD's defaults
    assert data["scores"]["odin"]["params"]["epsilon"] == pytest.approx(0.0014)
    assert set(data["near"]) == {"cifar100", "tin"}  # the table's near / far columns
    for score, row in (("odin", "ODIN"), ("iodin", "i-ODIN")):
        _check_paper_rows(tmp_path / "eval", stdout, score, row, label)


def test_npos_protocol_end_to_end_with_knn_k300_on_cifar10_files(
    tmp_path, monkeypatch, capsys, fast_eval
):
    """NPOS's from-scratch CIFAR-10 ``SupCEHeadResNet`` ``.pt`` (``encoder.module.*``,
    ``fc.module``, ``head.module.{0,2}``, ``mlp.{0,2}``, ``prototypes``; ResNet-34 blocks,
    stages narrowed to ``base=8``) under ``npos_cifar10``: KNN with the test scripts' k = 300.
    The tree has 31 training images per class, so the bank (310) holds k = 300 neighbours and
    k is not clipped. NPOS's CIFAR tables were not found: the protocol prints its note."""
    import warnings

    _openood_cifar10_tree(tmp_path, monkeypatch, per_class=31)
    g = torch.Generator().manual_seed(3)
    encoder = official.kuangliu_state(0, blocks=(3, 4, 6, 3), classifier="", base=8)
    d = 64  # 8 * base: the penultimate width

    def linear(name: str, out: int, inp: int) -> dict[str, torch.Tensor]:
        return {f"{name}.weight": torch.randn(out, inp, generator=g) / inp**0.5,
                f"{name}.bias": 0.1 * torch.randn(out, generator=g)}  # fmt: skip

    state = {f"encoder.module.{k}": v for k, v in encoder.items()} | linear("fc.module", 10, d)
    state |= linear("head.module.0", d, d) | linear("head.module.2", 128, d)
    state |= linear("mlp.0", 128, d) | linear("mlp.2", 1, 128)
    state["prototypes"] = torch.nn.functional.normalize(torch.randn(10, 128, generator=g), dim=1)
    path = tmp_path / "npos.pt"
    torch.save({"epoch": 100, "state_dict": state, "criterion_disp": {}}, path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="knn: k=")  # k = 300 must not be clipped
        assert main(_eval_argv(path, "npos_cifar10", tmp_path)) == 0
    stdout = capsys.readouterr().out
    assert "checkpoint format: npos (detected)" in stdout
    assert "mean [0.4914, 0.4822, 0.4465]" in stdout  # NPOS's CIFAR-10 training statistics
    assert "protocol npos_cifar10: KNN with k = 300" in stdout
    data = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert list(data["scores"]) == ["knn"]
    assert data["scores"]["knn"]["params"]["k"] == 300
    assert "paper_comparison" not in data  # no NPOS CIFAR table to compare with


@pytest.mark.slow
def test_mos_protocol_end_to_end_on_imagenet_folders(tmp_path, capsys, fast_eval):
    """MOS's ``bit.pth.tar`` of the BiT-S-R101x1 group fine-tune (``{"step", "model":
    module.root.conv, module.body.blockN.unitNN.*, module.before_head.gn, module.head.conv
    (1008, 2048, 1, 1)}``) with the 8-group list in MOS's ``PATH GROUP WITHIN`` format, on the
    ImageNet-1k folder tree (1000 wnid folders, one image each) and MOS's OOD folders.

    The model is the real R101x1 (the only BiT depth the converter maps); to stay fast it runs
    on 32-pixel images (``image_size=32`` instead of 480) and a seeded 16-image subset of the
    ID val set (``id_cap=16``), both documented quick-check options of ``imagenet1k``. It
    still takes 15-20 s on a busy 2-core CPU (every R101 forward standardises its 42M conv
    weights, whatever the batch), hence ``slow``."""
    from oodlab.data.groupings import IMAGENET_GROUP_SIZES

    synthesis = _helpers("data/test_synthesis_benchmarks.py")
    lines, group, within = [], 0, 0
    for index, wnid in enumerate(synthesis.WNIDS):
        jpeg = synthesis.encoded(index % 256)
        for split in ("train", "val"):
            (tmp_path / split / wnid).mkdir(parents=True)
            (tmp_path / split / wnid / f"{wnid}_1.JPEG").write_bytes(jpeg)
        if within == IMAGENET_GROUP_SIZES[group]:
            group, within = group + 1, 0
        within += 1
        lines.append(f"val/{wnid}/{wnid}_1.JPEG {group} {within}")
    groups = tmp_path / "imagenet2012_group_softmax_val_list.txt"
    groups.write_text("\n".join(lines) + "\n")
    synthesis.write_mos_ood(tmp_path)
    path = tmp_path / "bit.pth.tar"
    torch.save({"step": 1, "model": official.bit_state(1008)}, path)
    quick = ["--benchmark-set", "image_size=32", "--benchmark-set", "id_cap=16"]
    argv = _eval_argv(path, "mos_imagenet1k", tmp_path, "--model-set", f"groups={groups}", *quick)
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "checkpoint format: mos_bit (detected)" in stdout
    assert "MOS groups: 8 (399, 522, 10, 8, 53, 9, 4, 3 logits)" in stdout
    assert "mean [0.5, 0.5, 0.5]" in stdout  # BiT's [-1, 1] inputs
    data = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert list(data["scores"]["mos"]["per_set"]) == ["inaturalist", "sun", "places", "textures"]
    _check_paper_rows(tmp_path / "eval", stdout, "mos", "MOS", "MOS Table 1, ImageNet-1k")


def test_protocol_and_benchmark_disagree_in_one_line(tmp_path, capsys):
    path = tmp_path / "w.pt"
    torch.save(official.kuangliu_state(10, classifier="fc"), path)
    argv = ["eval", "--checkpoint", str(path), "--protocol", "pascl_cifar10_lt", "--benchmark",
            "cifar10"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "evaluates on benchmark 'cifar10_lt'" in err
    assert "\n" not in err


def test_list_protocols_prints_the_tables(capsys):
    assert main(["list", "protocols"]) == 0
    out = capsys.readouterr().out
    assert "pascl_cifar10_lt" in out
    assert "compare with: MOS Table 1" in out
    assert "no published table found" in out  # PATT


def test_bench_summary_gets_the_paper_rows_under_ours():
    from oodlab.bench.report import summary_markdown

    def stat(v):
        return {"mean": v, "std": 0.0}

    row = {"method": "pascl", "score": "msp", "default_score": True,
           "all.auroc": stat(0.9), "all.aupr_out": stat(0.8), "all.fpr95_closest": stat(0.3),
           "id_accuracy": stat(0.7)}  # fmt: skip
    other = {**row, "method": "patt", "score": "patt_energy"}  # no PASCL-table row
    summary = {"preset": "cifar10_lt", "description": "d", "seeds": [0], "rows": [row, other],
               "sets": {}, "ranking": {}, "highlight": []}  # fmt: skip
    text = summary_markdown(summary)
    assert "## Paper: PASCL Table 1, CIFAR10-LT average" in text
    assert "| ours: pascl (msp) | 90.00 | 80.00 | 30.00 | 70.00 |" in text
    assert "| paper: PASCL | 90.99 | 89.24 | 33.36 | 77.08 |" in text
    assert "| difference | -0.99 | -9.24 | -3.36 | -7.08 |" in text
    assert "ours: patt" not in text
