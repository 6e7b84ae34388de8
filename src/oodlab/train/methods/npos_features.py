"""NPOS on pre-extracted embeddings (the CLIP pipeline): fine-tune the last layers, then MCM.

Usage (no model is downloaded, any embedding files work)::

    oodlab train configs/imagenet100/npos_clip_features.yaml --run-dir runs/npos_clip

(``oodlab train`` dispatches ``method.name: npos_features`` here), or from Python::

    from oodlab.train.methods.npos_features import train_on_features
    results = train_on_features("configs/imagenet100/npos_clip_features.yaml", "runs/npos_clip")

or ``python -m oodlab.train.methods.npos_features CONFIG OUT_DIR [--set key=value ...]``.
The config is a run config (``train.*``: optimiser, schedule, epochs, seed, device;
``data.batch_size``) with ``method.name: npos_features`` and the files and hyper-parameters in
``method.options`` (:class:`NPOSFeatureOptions`). ``OUT_DIR`` is a run folder, written
atomically as an image run's: ``config.yaml``; ``meta.json`` (versions, git commit, device,
seed, and the path and SHA-256 of every embedding file read); ``train_log.jsonl`` (one row per
epoch); ``checkpoint.pt`` (+ ``checkpoint.prev.pt``, each with its ``.json`` hash record) after
every epoch; at the end ``model.pt`` (the tail and ``φ`` state dicts) and ``results.json``
(per-epoch losses; ID accuracy and MCM metrics per OOD set and their mean, OOD = positive).

An interrupted run resumes (``oodlab train CONFIG --run-dir OUT_DIR --resume``, or
``resume=True``) from its last checkpoint and ends bit-identical to an uninterrupted run on
the CPU; see :func:`train_on_features`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from oodlab.config import RunConfig, check, from_dict, load_config, save_resolved
from oodlab.errors import ConfigError, DataError, OodlabError
from oodlab.eval.metrics import ood_metrics
from oodlab.io import atomic_torch_save, atomic_write_json, sha256_file
from oodlab.locks import locks_folder
from oodlab.losses.npos import NPOSFeatureLoss
from oodlab.models.heads import BinaryDiscriminator
from oodlab.scores._features import l2_normalize
from oodlab.scores.mcm import mcm
from oodlab.synthesis.feature_data import FeatureTail, load_features, load_labels
from oodlab.synthesis.npos import NPOSSynthesizer
from oodlab.train import checkpoint
from oodlab.train.optim import build_optimizer, build_scheduler
from oodlab.train.recipes import Batch, Recipe, register_method
from oodlab.train.run import (
    append_log,
    check_same_config,
    load_run_config,
    provenance,
    read_log,
    refuse_existing_run,
    rewrite_log,
)
from oodlab.train.seeding import seed_everything

PAPER = "Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966"
_TERMS = ("loss", "cls", "open")
_TRAIN_INPUTS = ("train_features", "train_labels", "class_embeddings")
_RUN_FILES = ("checkpoint.pt", "checkpoint.prev.pt", "model.pt", "results.json")


@dataclass(frozen=True)
class NPOSFeatureOptions:
    """Options of ``npos_features`` (defaults: the ImageNet-100 script, synthesis_and_mos.md §2.3).

    Attributes:
        train_features, train_labels: ``(N, D)`` embeddings and ``(N,)`` labels (.npy / .pt).
        class_embeddings: ``(C, D_out)`` class (text) embeddings, the frozen classifier.
        test_features, test_labels: the ID test split (optional; needed for the metrics).
        ood_features: OOD test embeddings by set name.
        tail_blocks, tail_hidden: residual blocks of the trainable tail (:class:`FeatureTail`).
        mlp_hidden: ``φ``'s hidden width (32); mlp_lr_factor: its learning-rate factor (0.1).
        logitnorm_t: LogitNorm ``t`` (8.0); open_weight: ``β`` (0.1); balanced_open.
        start_epoch (10), queue_size (1000), noise_samples (1500), select (300), pick (3),
            keep (2), k (400), sigma (0.1): the synthesis (:class:`NPOSSynthesizer`).
        rejection: ``"topk"`` (default, the paper's intent) or ``"official"`` (the code's
            ranking/return layout mismatch, which matters for ``pick > 1``: the ImageNet-100
            script's ``P = 3``; :mod:`oodlab.synthesis.npos`).
        mcm_temperature: ``τ`` of the MCM score (1).
    """

    train_features: str = ""
    train_labels: str = ""
    class_embeddings: str = ""
    test_features: str | None = None
    test_labels: str | None = None
    ood_features: dict[str, str] = field(default_factory=dict)
    tail_blocks: int = 1
    tail_hidden: int | None = None
    mlp_hidden: int = 32
    mlp_lr_factor: float = 0.1
    logitnorm_t: float = 8.0
    open_weight: float = 0.1
    balanced_open: bool = False
    start_epoch: int = 10
    queue_size: int = 1000
    noise_samples: int = 1500
    select: int = 300
    pick: int = 3
    keep: int = 2
    k: int = 400
    sigma: float = 0.1
    rejection: Literal["topk", "official"] = "topk"
    mcm_temperature: float = 1.0

    def __post_init__(self) -> None:
        check(self.tail_blocks >= 0, "method.options.tail_blocks must be >= 0")
        check(self.mlp_lr_factor > 0 and self.logitnorm_t > 0, "lr factor and t must be > 0")
        check(self.mcm_temperature > 0, "method.options.mcm_temperature must be > 0")
        check(self.start_epoch >= 0, "method.options.start_epoch must be >= 0")


@register_method("npos_features", config_type=NPOSFeatureOptions, paper=PAPER, default_score="mcm")
class NPOSFeaturesRecipe(Recipe):
    """Placeholder in the image loop: ``oodlab train`` runs :func:`train_on_features`."""

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        raise ConfigError(
            "npos_features trains on embedding files, not images, outside the image loop: "
            "run `oodlab train CONFIG --run-dir OUT_DIR` (or train_on_features)"
        )


@locks_folder("out_dir")
def train_on_features(
    config: RunConfig | str | Path,
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    resume: bool = False,
) -> dict[str, Any]:
    """Train the tail and ``φ`` with NPOS on embedding files, score with MCM, write results.

    After every epoch an atomic, verified checkpoint (:mod:`oodlab.train.checkpoint`) holds
    the tail, ``φ``, optimiser, schedule, the synthesizer's class queues and counters, the RNG
    states and the epoch. With ``resume``, training continues from the newest good checkpoint
    in ``out_dir`` (or starts, when there is none) and ends as an uninterrupted run would
    (bit-identical on the CPU); a run that already finished ``train.epochs`` returns its
    stored results without training; a larger ``train.epochs`` extends a finished run.

    Raises:
        ConfigError: ``out_dir`` already holds a run and ``resume`` is false; with ``resume``,
            it holds a run of another config (only the keys of
            :data:`~oodlab.train.run.RESUME_MAY_CHANGE` may change) or one past
            ``train.epochs``.
        DataError: a file is missing or malformed, or (with ``resume``) a training input
            changed since the run started (its SHA-256 is in ``meta.json``).
        CheckpointError: ``resume`` finds only corrupted checkpoints.

    Reference:
        Tao, Du, Zhu & Li, "Non-parametric Outlier Synthesis", ICLR 2023, arXiv:2303.02966,
        Sec. 3 (Eq. 6, ``R_open``) and its CLIP fine-tuning experiments; the settings are
        the official ImageNet-100 script's (synthesis_and_mos.md §2.3); MCM: §4.8.

    Notes:
        The paper fine-tunes CLIP's last two transformer blocks on stored token sequences;
        this pipeline fine-tunes a residual MLP tail and the projection on stored embeddings
        (any extractor), so it needs no model at run time. Logits and MCM use per-sample
        cosine similarity, not the code's batch-Frobenius scaling. The code's MultiStepLR
        ``gamma = 10`` is reproduced only if the config sets it.
    """
    if not isinstance(config, RunConfig):
        config = load_config(RunConfig, config, overrides)
    opts = feature_options(config)
    out = Path(out_dir)
    if resume:
        stored = finished_results(config, out)
        if stored is not None:
            return stored
    else:
        refuse_existing_run(out, _RUN_FILES)
    text = load_features(opts.class_embeddings, "class embeddings")
    x = load_features(opts.train_features, "training features")
    y = load_labels(opts.train_labels, "training labels", len(x), len(text))
    inputs = _input_records(opts)
    tc = config.train
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if tc.device == "auto" else tc.device)
    seed_everything(tc.seed)
    tail = FeatureTail(x.shape[1], text.shape[1], opts.tail_blocks, opts.tail_hidden).to(device)
    phi = BinaryDiscriminator(text.shape[1], opts.mlp_hidden).to(device)
    groups = [{"params": list(tail.parameters()), "lr": tc.lr}]
    groups.append({"params": list(phi.parameters()), "lr": tc.lr * opts.mlp_lr_factor})
    batch = min(config.data.batch_size, len(x))
    steps = len(x) // batch
    optimizer = build_optimizer(groups, tc)
    scheduler = build_scheduler(optimizer, steps, tc)
    criterion = NPOSFeatureLoss(opts.logitnorm_t, opts.open_weight, opts.balanced_open)
    synth = NPOSSynthesizer(
        len(text),
        opts.queue_size,
        opts.noise_samples,
        opts.select,
        opts.pick,
        opts.keep,
        opts.k,
        opts.sigma,
        rejection=opts.rejection,
    )
    state = checkpoint.load_latest(out) if resume else None
    done = 0 if state is None else int(state["epoch"])
    if state is not None:
        if done > tc.epochs:
            raise ConfigError(
                f"{out} has trained {done} epochs, past train.epochs={tc.epochs}; set "
                f"train.epochs >= {done}, or pass another --run-dir"
            )
        _check_inputs(out, inputs)
        tail.load_state_dict(state["model"]["tail"])
        phi.load_state_dict(state["model"]["phi"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        synth.load_state_dict(state["synthesizer"])
        checkpoint.set_rng_state(state["rng"])
    _start_run_folder(out, config, device, inputs, done)
    classes = l2_normalize(text).to(device)
    epochs = range(done, tc.epochs)
    for epoch in tqdm(epochs, "npos_features", tc.epochs, False, initial=done, disable=tc.quiet):
        tic, lr = time.perf_counter(), float("nan")
        order = torch.randperm(len(x))
        sums = dict.fromkeys(_TERMS, 0.0)
        for i in range(steps):
            rows = order[i * batch : (i + 1) * batch]
            e = tail(x[rows].to(device))
            synth.push(e, y[rows])
            outliers = None
            if epoch >= opts.start_epoch and synth.ready:
                outliers = phi(synth.sample())
            logits = l2_normalize(e) @ classes.T
            terms = criterion.terms(logits, y[rows].to(device), phi(e), outliers)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            scheduler.step()
            for key in sums:
                sums[key] += float(terms[key].detach()) / steps
        row = {"scope": "epoch", "epoch": epoch, "step": (epoch + 1) * steps, **sums, "lr": lr}
        append_log(out, [{**row, "seconds": time.perf_counter() - tic}])
        ckpt: dict[str, Any] = {"epoch": epoch + 1, "step": (epoch + 1) * steps}
        ckpt["model"] = {"tail": tail.state_dict(), "phi": phi.state_dict()}
        ckpt |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        ckpt |= {"synthesizer": synth.state_dict(), "rng": checkpoint.rng_state()}
        checkpoint.save(out, ckpt)
    atomic_torch_save(out / "model.pt", {"tail": tail.state_dict(), "phi": phi.state_dict()})
    log = [{k: r[k] for k in ("epoch", *_TERMS)} for r in read_log(out) if r["scope"] == "epoch"]
    results: dict[str, Any] = {"method": "npos_features", "score": "mcm", "epochs": tc.epochs}
    results["train_log"] = log
    results.update(_evaluate(tail, classes, opts, x.shape[1], device))
    atomic_write_json(out / "results.json", results)
    return results


def finished_results(config: RunConfig, run_dir: str | Path) -> dict[str, Any] | None:
    """The stored ``results.json`` when ``run_dir`` has finished ``config``, else ``None``.

    Raises:
        ConfigError: ``run_dir`` holds a run of another config (only the keys of
            :data:`~oodlab.train.run.RESUME_MAY_CHANGE` may differ: a resume may extend a run).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return None
    check_same_config(load_run_config(run_dir), config, run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        return None
    results: dict[str, Any] = json.loads(path.read_text())
    return results if results.get("epochs") == config.train.epochs else None


def feature_options(config: RunConfig) -> NPOSFeatureOptions:
    """The validated options of an npos_features run config (the training files required)."""
    if config.method.name != "npos_features":
        raise ConfigError(f"method.name must be 'npos_features', got {config.method.name!r}")
    opts = from_dict(NPOSFeatureOptions, config.method.options, where="method.options")
    for key in _TRAIN_INPUTS:
        check(bool(getattr(opts, key)), f"method.options.{key} is required (a .npy or .pt path)")
    return opts


def _input_records(opts: NPOSFeatureOptions) -> dict[str, dict[str, str]]:
    """Path and SHA-256 of every embedding file the run reads (missing files raise one line)."""
    paths = {key: getattr(opts, key) for key in (*_TRAIN_INPUTS, "test_features", "test_labels")}
    paths |= {f"ood_features.{name}": path for name, path in sorted(opts.ood_features.items())}
    records = {}
    for key, path in paths.items():
        if path is None:
            continue
        if not Path(path).is_file():
            raise DataError(
                f"method.options.{key} file {path} does not exist; pass an existing .npy or .pt"
            )
        records[key] = {"path": str(path), "sha256": sha256_file(path)}
    return records


def _check_inputs(run_dir: Path, inputs: dict[str, dict[str, str]]) -> None:
    """A resumed run trains on the very files it started with (their SHA-256 in meta.json)."""
    meta = run_dir / "meta.json"
    saved = json.loads(meta.read_text()).get("embedding_files", {}) if meta.is_file() else {}
    for key in _TRAIN_INPUTS:
        old, new = saved.get(key, {}).get("sha256"), inputs[key]["sha256"]
        if old is not None and old != new:
            raise DataError(
                f"method.options.{key} file {inputs[key]['path']} changed since the run in "
                f"{run_dir} started (SHA-256 {old[:12]}..., now {new[:12]}...); restore it, or "
                "pass another --run-dir"
            )


def _start_run_folder(
    out: Path,
    config: RunConfig,
    device: torch.device,
    inputs: dict[str, dict[str, str]],
    done: int,
) -> None:
    """config.yaml, meta.json, the train log cut to the ``done`` epochs; no stale results."""
    out.mkdir(parents=True, exist_ok=True)
    save_resolved(config, out / "config.yaml")
    meta = {**provenance(device, config.train.seed), "embedding_files": inputs}
    atomic_write_json(out / "meta.json", meta)
    for name in ("model.pt", "results.json"):  # an extended run: written again at its end
        (out / name).unlink(missing_ok=True)
    rewrite_log(out, [row for row in read_log(out) if row["epoch"] < done])


@torch.no_grad()
def _evaluate(
    tail: nn.Module, classes: Tensor, opts: NPOSFeatureOptions, dim: int, device: torch.device
) -> dict[str, Any]:
    """ID accuracy and MCM metrics (higher = more OOD) per OOD set, with their mean."""
    if opts.test_features is None:
        return {}
    tail.eval()
    test = tail(load_features(opts.test_features, "test features", dim).to(device))
    out: dict[str, Any] = {}
    if opts.test_labels is not None:
        labels = load_labels(opts.test_labels, "test labels", len(test), len(classes))
        pred = (l2_normalize(test) @ classes.T).argmax(1).cpu()
        out["id_accuracy"] = float((pred == labels).float().mean())
    id_scores = mcm(test, classes, opts.mcm_temperature).cpu()
    per_set = {
        name: ood_metrics(id_scores, mcm(tail(load_features(path, f"OOD set {name!r}", dim)
                                               .to(device)), classes, opts.mcm_temperature).cpu())
        for name, path in sorted(opts.ood_features.items())
    }  # fmt: skip
    out["ood"] = per_set
    if per_set:
        keys = next(iter(per_set.values())).keys()
        out["mean"] = {k: sum(m[k] for m in per_set.values()) / len(per_set) for k in keys}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="NPOS on pre-extracted embeddings (MCM score)")
    parser.add_argument("config")
    parser.add_argument("out_dir")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT_DIR")
    args = parser.parse_args(argv)
    try:
        results = train_on_features(args.config, args.out_dir, args.overrides, args.resume)
    except OodlabError as exc:  # one line, as the oodlab CLI
        raise SystemExit(f"error: {exc}") from None
    print({k: v for k, v in results.items() if k in ("id_accuracy", "mean")})


if __name__ == "__main__":
    main()
