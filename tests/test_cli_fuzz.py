"""Bad input through ``oodlab.cli.main``: every case exits non-zero with exactly one line on
stderr, no traceback, and leaves the run folder, the cache and every other file as they were.

Most cases fail at validation, before anything is built; the few that need a trained run share
one tiny run trained once for the module (a second or two on the CPU).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from oodlab.cli import main

CONFIG = """\
data:
  benchmark: synthetic
  options: {n_max: 16, n_test_per_class: 4, n_ood: 8, n_aux: 8}
  batch_size: 16
model:
  name: small_cnn
  options: {width: 0.25}
train:
  epochs: 1
  device: cpu
  quiet: true
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared inputs: a config, broken configs, a file in the way, a finished run, weights."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "cfg.yaml").write_text(CONFIG)
    (root / "empty.yaml").write_text("")
    (root / "comments.yaml").write_text("# nothing but a comment\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "bad.yaml").write_text("data: {benchmark: [synthetic\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81" * 8)
    (root / "afile").write_text("in the way\n")
    (root / "emptydir").mkdir()
    run = root / "run"
    assert main(["train", str(root / "cfg.yaml"), "--run-dir", str(run)]) == 0
    from oodlab.models import MODELS

    model = MODELS.create("small_cnn", num_classes=4, in_channels=1, width=0.25)
    torch.save(model.state_dict(), root / "weights.pt")
    other = MODELS.create("small_cnn", num_classes=4, in_channels=1, width=1.0)
    torch.save(other.state_dict(), root / "wide.pt")
    torch.save(torch.zeros(3), root / "tensor.pt")
    torch.save({"model": model.state_dict(), "note": Path("x")}, root / "pickled.pt")
    (root / "garbage.pt").write_bytes(b"not a checkpoint at all")
    return root


def _copy_run(world: Path, case: Path) -> Path:
    run = case / "run"
    shutil.copytree(world / "run", run)
    return run


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncated_model_json(world: Path, case: Path) -> None:
    _truncate(_copy_run(world, case) / "model.json")


def corrupted_model_pt(world: Path, case: Path) -> None:
    _flip_byte(_copy_run(world, case) / "model.pt")


def model_json_not_a_record(world: Path, case: Path) -> None:
    (_copy_run(world, case) / "model.json").write_text(json.dumps({"model": 1}))


def run_without_config(world: Path, case: Path) -> None:
    (_copy_run(world, case) / "config.yaml").unlink()


def unfinished_run(world: Path, case: Path) -> None:
    run = _copy_run(world, case)
    (run / "model.pt").unlink()
    (run / "model.json").unlink()


def config_yaml_truncated(world: Path, case: Path) -> None:
    (_copy_run(world, case) / "config.yaml").write_text("data: {benchmark: [synth\n")


def log_corrupted_mid_file(world: Path, case: Path) -> None:
    run = _copy_run(world, case)
    (run / "model.pt").unlink()  # unfinished: a resume reads the log
    (run / "model.json").unlink()
    log = run / "train_log.jsonl"
    log.write_text('{"scope": "epoch", "epo\n' + log.read_text())


def holds_run_copy(world: Path, case: Path) -> None:
    _copy_run(world, case)


W = "{w}"  # the shared world folder
C = "{c}"  # this case's own folder
TRAIN = ["train", f"{W}/cfg.yaml", "--run-dir", f"{C}/new"]
EVAL_CKPT = ["eval", "--checkpoint", f"{W}/weights.pt", "--model", "small_cnn"]
EVAL_CKPT += ["--model-set", "width=0.25", "--cache-dir", f"{C}/cache", "--out", f"{C}/out"]
EVAL_CKPT += ["--normalize", "none"]
EVAL_RUN = ["eval", f"{W}/run", "--cache-dir", f"{C}/cache"]

Setup = Callable[[Path, Path], None] | None
CASES: list[tuple[str, list[str], Setup, str]] = [
    # --- train: config values, validated where they are parsed -----------------------------
    ("override-bad-yaml", [*TRAIN, "--set", "train.epochs=[1,"], None, "not valid YAML"),
    ("override-no-equals", [*TRAIN, "--set", "train.epochs"], None, "key.subkey=value"),
    ("override-empty-key", [*TRAIN, "--set", "train..lr=1"], None, "empty key"),
    ("override-into-number", [*TRAIN, "--set", "train.lr.x=1"], None, "expected a number"),
    ("section-not-mapping", [*TRAIN, "--set", "train=5"], None, "expected a mapping"),
    ("unknown-key", [*TRAIN, "--set", "train.lrr=0.1"], None, "Did you mean 'lr'"),
    ("epochs-zero", [*TRAIN, "--set", "train.epochs=0"], None, "train.epochs must be >= 1"),
    ("epochs-text", [*TRAIN, "--set", "train.epochs=abc"], None, "expected an integer"),
    ("epochs-float", [*TRAIN, "--set", "train.epochs=1.5"], None, "expected an integer"),
    ("lr-inf", [*TRAIN, "--set", "train.lr=.inf"], None, "expected a finite number"),
    ("lr-nan", [*TRAIN, "--set", "train.lr=.nan"], None, "expected a finite number"),
    ("lr-negative", [*TRAIN, "--set", "train.lr=-1"], None, "train.lr must be > 0"),
    ("lr-bool", [*TRAIN, "--set", "train.lr=true"], None, "expected a number"),
    ("wd-inf", [*TRAIN, "--set", "train.weight_decay=-.inf"], None, "finite"),
    ("gamma-zero", [*TRAIN, "--set", "train.gamma=0"], None, "train.gamma must be > 0"),
    ("seed-negative", [*TRAIN, "--set", "train.seed=-1"], None, "train.seed must be in"),
    ("seed-huge", [*TRAIN, "--set", "train.seed=99999999999"], None, "train.seed must be in"),
    ("data-seed-negative", [*TRAIN, "--set", "data.seed=-3"], None, "data.seed must be in"),
    ("optimizer", [*TRAIN, "--set", "train.optimizer=rmsprop"], None, "expected one of"),
    ("schedule", [*TRAIN, "--set", "train.schedule=linear"], None, "expected one of"),
    ("nonfinite-mode", [*TRAIN, "--set", "train.nonfinite=ignore"], None, "'stop', 'skip'"),
    ("milestones", [*TRAIN, "--set", "train.milestones=[3,1]"], None, "increasing"),
    ("max-steps-zero", [*TRAIN, "--set", "train.max_steps=0"], None, "max_steps"),
    ("min-lr-above-lr", [*TRAIN, "--set", "train.min_lr=1"], None, "min_lr"),
    ("device-gpu", [*TRAIN, "--set", "train.device=gpu"], None, "train.device must be"),
    ("device-cuda-99", [*TRAIN, "--set", "train.device=cuda:99"], None, "cuda:99"),
    ("batch-zero", [*TRAIN, "--set", "data.batch_size=0"], None, "data.batch_size must be"),
    ("batch-list", [*TRAIN, "--set", "data.batch_size=[16]"], None, "expected an integer"),
    ("workers-negative", [*TRAIN, "--set", "data.num_workers=-1"], None, "num_workers"),
    ("crop-negative", [*TRAIN, "--set", "data.crop_padding=-2"], None, "crop_padding"),
    ("benchmark-unknown", [*TRAIN, "--set", "data.benchmark=nosuch"], None, "nosuch"),
    ("bench-option-unknown", [*TRAIN, "--set", "data.options.bogus=1"], None, "'bogus'"),
    ("bench-option-typo", [*TRAIN, "--set", "data.options.n_maxx=3"], None, "'n_max'"),
    ("bench-option-type", [*TRAIN, "--set", "data.options.n_max=abc"], None, "an integer"),
    ("bench-option-inf", [*TRAIN, "--set", "data.options.imbalance_ratio=.inf"], None, "finite"),
    ("imbalance-zero", [*TRAIN, "--set", "data.options.imbalance_ratio=0"], None, "(0, 1]"),
    ("imbalance-negative", [*TRAIN, "--set", "data.options.imbalance_ratio=-1"], None, "(0, 1]"),
    ("imbalance-above-one", [*TRAIN, "--set", "data.options.imbalance_ratio=2"], None, "(0, 1]"),
    (
        "imbalance-empty-class",
        [*TRAIN, "--set", "data.options.imbalance_ratio=0.001"],
        None,
        "0 images",
    ),
    ("options-not-mapping", [*TRAIN, "--set", "data.options=3"], None, "expected a mapping"),
    ("model-unknown", [*TRAIN, "--set", "model.name=nosuch"], None, "nosuch"),
    ("model-option-type", [*TRAIN, "--set", "model.options.width=abc"], None, "a number"),
    ("model-option-unknown", [*TRAIN, "--set", "model.options.depth=3"], None, "'depth'"),
    ("model-norm-choice", [*TRAIN, "--set", "model.options.norm=layer"], None, "expected one of"),
    (
        "mean-channels",
        [*TRAIN, "--set", "model.mean=[0.5,0.5,0.5]", "--set", "model.std=[0.2,0.2,0.2]"],
        None,
        "1 channel",
    ),
    ("mean-without-std", [*TRAIN, "--set", "model.mean=[0.5]"], None, "go together"),
    ("std-zero", [*TRAIN, "--set", "model.mean=[0]", "--set", "model.std=[0]"], None, "> 0"),
    ("weights-missing", [*TRAIN, "--set", "model.weights=/no/such.pth"], None, "not a file"),
    ("method-unknown", [*TRAIN, "--set", "method.name=nosuch"], None, "nosuch"),
    (
        "method-option-unknown",
        [*TRAIN, "--set", "method.name=oe", "--set", "method.options.bogus=1"],
        None,
        "bogus",
    ),
    (
        "method-option-type",
        [*TRAIN, "--set", "method.name=oe", "--set", "method.options.lam=abc"],
        None,
        "lam",
    ),
    # --- train: the config file, the run folder ----------------------------------------------
    ("config-missing", ["train", f"{C}/none.yaml"], None, "does not exist"),
    ("config-empty", ["train", f"{W}/empty.yaml", "--run-dir", f"{C}/r"], None, "is empty"),
    ("config-comments", ["train", f"{W}/comments.yaml", "--run-dir", f"{C}/r"], None, "empty"),
    ("config-list", ["train", f"{W}/list.yaml", "--run-dir", f"{C}/r"], None, "a mapping"),
    ("config-bad-yaml", ["train", f"{W}/bad.yaml", "--run-dir", f"{C}/r"], None, "valid YAML"),
    ("config-binary", ["train", f"{W}/binary.yaml", "--run-dir", f"{C}/r"], None, "UTF-8"),
    ("config-is-folder", ["train", f"{W}/emptydir", "--run-dir", f"{C}/r"], None, "does not exist"),
    ("run-dir-is-file", [*TRAIN[:3], f"{W}/afile"], None, "is a file, not a folder"),
    ("run-dir-under-file", [*TRAIN[:3], f"{W}/afile/sub"], None, "is a file, not a folder"),
    ("run-dir-empty", [*TRAIN[:3], ""], None, "empty path"),
    ("resume-empty-folder", [*TRAIN[:3], f"{W}/emptydir", "--resume"], None, "holds no run"),
    ("resume-nothing", [*TRAIN[:3], f"{C}/none", "--resume"], None, "holds no run"),
    ("run-exists", [*TRAIN[:3], f"{C}/run"], holds_run_copy, "already holds a run"),
    (
        "resume-other-config",
        [*TRAIN[:3], f"{C}/run", "--resume", "--set", "train.lr=0.5"],
        holds_run_copy,
        "another config",
    ),
    (
        "resume-bad-saved-config",
        [*TRAIN[:3], f"{C}/run", "--resume"],
        config_yaml_truncated,
        "valid YAML",
    ),
    (
        "resume-corrupted-log",
        [*TRAIN[:3], f"{C}/run", "--resume"],
        log_corrupted_mid_file,
        "train_log.jsonl:1",
    ),
    ("train-unknown-flag", [*TRAIN, "--bogus"], None, "unrecognized arguments"),
    ("train-no-config", ["train"], None, "required"),
    # --- eval ---------------------------------------------------------------------------------
    ("eval-no-run", ["eval", f"{C}/no/such/run"], None, "does not exist"),
    ("eval-nothing", ["eval"], None, "give a run folder"),
    ("eval-both", [*EVAL_RUN, "--checkpoint", f"{W}/weights.pt"], None, "not both"),
    ("eval-no-benchmark", EVAL_CKPT, None, "--benchmark"),
    ("eval-device-gpu", [*EVAL_RUN, "--device", "gpu"], None, "expected auto, cpu"),
    ("eval-device-cuda-99", [*EVAL_RUN, "--device", "cuda:99"], None, "cuda:99"),
    ("eval-batch-zero", [*EVAL_RUN, "--batch-size", "0"], None, "integer >= 1"),
    ("eval-batch-negative", [*EVAL_RUN, "--batch-size", "-1"], None, "integer >= 1"),
    ("eval-batch-text", [*EVAL_RUN, "--batch-size", "many"], None, "integer >= 1"),
    ("eval-workers-negative", [*EVAL_RUN, "--workers", "-1"], None, "integer >= 0"),
    ("eval-seed-text", [*EVAL_RUN, "--seed", "x"], None, "integer >= 0"),
    ("eval-scores-empty", [*EVAL_RUN, "--scores", " , "], None, "--scores is empty"),
    ("eval-score-typo", [*EVAL_RUN, "--scores", "msp,enrgy"], None, "Did you mean 'energy'"),
    ("eval-out-is-file", [*EVAL_RUN, "--out", f"{W}/afile"], None, "is a file"),
    ("eval-out-under-file", [*EVAL_RUN, "--out", f"{W}/afile/x"], None, "is a file"),
    ("eval-cache-is-file", ["eval", f"{W}/run", "--cache-dir", f"{W}/afile"], None, "is a file"),
    (
        "eval-model-json-truncated",
        ["eval", f"{C}/run", "--cache-dir", f"{C}/cache"],
        truncated_model_json,
        "truncated or corrupted",
    ),
    (
        "eval-model-json-malformed",
        ["eval", f"{C}/run", "--cache-dir", f"{C}/cache"],
        model_json_not_a_record,
        "model.json",
    ),
    (
        "eval-model-pt-corrupted",
        ["eval", f"{C}/run", "--cache-dir", f"{C}/cache"],
        corrupted_model_pt,
        "SHA-256 does not match",
    ),
    (
        "eval-not-a-run",
        ["eval", f"{C}/run", "--cache-dir", f"{C}/cache"],
        run_without_config,
        "not a run folder",
    ),
    (
        "eval-unfinished",
        ["eval", f"{C}/run", "--cache-dir", f"{C}/cache"],
        unfinished_run,
        "has not finished",
    ),
    (
        "eval-bare-tensor",
        [*EVAL_CKPT[:2], f"{W}/tensor.pt", *EVAL_CKPT[3:], "--benchmark", "synthetic"],
        None,
        "not a state dict",
    ),
    (
        "eval-pickled-object",
        [*EVAL_CKPT[:2], f"{W}/pickled.pt", *EVAL_CKPT[3:], "--benchmark", "synthetic"],
        None,
        "not a plain tensor checkpoint",
    ),
    (
        "eval-garbage-checkpoint",
        [*EVAL_CKPT[:2], f"{W}/garbage.pt", *EVAL_CKPT[3:], "--benchmark", "synthetic"],
        None,
        "cannot read checkpoint",
    ),
    (
        "eval-missing-checkpoint",
        [*EVAL_CKPT[:2], f"{C}/none.pt", *EVAL_CKPT[3:], "--benchmark", "synthetic"],
        None,
        "does not exist",
    ),
    (
        "eval-other-width",
        [*EVAL_CKPT[:2], f"{W}/wide.pt", *EVAL_CKPT[3:], "--benchmark", "synthetic"],
        None,
        "does not fit",
    ),
    (
        "eval-model-set-type",
        [*EVAL_CKPT[:5], "--model-set", "width=abc", "--benchmark", "synthetic"],
        None,
        "a number",
    ),
    (
        "eval-model-set-unknown",
        [*EVAL_CKPT[:5], "--model-set", "depth=2", "--benchmark", "synthetic"],
        None,
        "'depth'",
    ),
    ("eval-model-unknown", [*EVAL_CKPT[:4], "nosuch", "--benchmark", "synthetic"], None, "nosuch"),
    ("eval-benchmark-unknown", [*EVAL_CKPT, "--benchmark", "nosuch"], None, "nosuch"),
    # --- bench, demo, list, top level -------------------------------------------------------
    (
        "bench-seeds-text",
        ["bench", "demo", "--seeds", "a,b", "--out", f"{C}/b"],
        None,
        "comma-separated integers",
    ),
    (
        "bench-seeds-empty-item",
        ["bench", "demo", "--seeds", "0,,1", "--out", f"{C}/b"],
        None,
        "comma-separated integers",
    ),
    (
        "bench-seeds-negative",
        ["bench", "demo", "--seeds", "-1", "--out", f"{C}/b"],
        None,
        "comma-separated integers",
    ),
    (
        "bench-seeds-repeated",
        ["bench", "demo", "--seeds", "0,0", "--out", f"{C}/b"],
        None,
        "repeated",
    ),
    ("bench-unknown-preset", ["bench", "nosuch"], None, "invalid choice"),
    ("bench-out-is-file", ["bench", "demo", "--out", f"{W}/afile"], None, "is a file"),
    ("bench-out-empty", ["bench", "demo", "--out", ""], None, "empty path"),
    ("demo-out-is-file", ["demo", "--out", f"{W}/afile", "--no-install"], None, ""),
    ("list-unknown", ["list", "nosuch"], None, "invalid choice"),
    ("no-command", [], None, "required"),
    ("unknown-top-flag", ["--nosuch"], None, "required"),
]


def _snapshot(*roots: Path) -> dict[str, str]:
    files = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            key = str(path)
            files[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "/"
    return files


def test_there_are_enough_cases():
    assert len(CASES) >= 60
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "setup", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_one_line_and_changes_nothing(
    argv, setup, expected, world, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("OODLAB_NO_INSTALL", "1")  # the demo case never installs anything
    monkeypatch.delenv("OODLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # a default folder (runs/, .oodlab_cache) would land here
    if setup is not None:
        setup(world, tmp_path)
    args = [a.replace(W, str(world)).replace(C, str(tmp_path)) for a in argv]
    before = _snapshot(world, tmp_path)
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code not in (0, None), captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in captured.err
    assert expected in lines[0]
    assert _snapshot(world, tmp_path) == before  # nothing written, nothing removed
