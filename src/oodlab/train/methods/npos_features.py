"""NPOS on pre-extracted embeddings (the CLIP pipeline): fine-tune the last layers, then MCM.

Usage (no model is downloaded, any embedding files work)::

    oodlab train configs/imagenet100/npos_clip_features.yaml --run-dir runs/npos_clip

(``oodlab train`` dispatches ``method.name: npos_features`` here), or from Python::

    from oodlab.train.methods.npos_features import train_on_features
    results = train_on_features("configs/imagenet100/npos_clip_features.yaml", "runs/npos_clip")

or ``python -m oodlab.train.methods.npos_features CONFIG OUT_DIR [--set key=value ...]``.
The config is a run config (``train.*``: optimiser, schedule, epochs, seed, device;
``data.batch_size``) with ``method.name: npos_features`` and the files and hyper-parameters in
``method.options`` (:class:`NPOSFeatureOptions`). ``OUT_DIR`` receives, atomically,
``config.yaml``, ``model.pt`` (the tail and ``φ`` state dicts) and ``results.json`` (per-epoch
losses; ID accuracy and MCM metrics per OOD set and their mean, OOD = positive).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from oodlab.config import RunConfig, check, from_dict, load_config, save_resolved
from oodlab.errors import ConfigError, OodlabError
from oodlab.eval.metrics import ood_metrics
from oodlab.io import atomic_torch_save, atomic_write_json
from oodlab.losses.npos import NPOSFeatureLoss
from oodlab.models.heads import BinaryDiscriminator
from oodlab.scores._features import l2_normalize
from oodlab.scores.mcm import mcm
from oodlab.synthesis.feature_data import FeatureTail, load_features, load_labels
from oodlab.synthesis.npos import NPOSSynthesizer
from oodlab.train.checkpoint import seed_everything
from oodlab.train.optim import build_optimizer, build_scheduler
from oodlab.train.recipes import Batch, Recipe, register_method

PAPER = "Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966"


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


def train_on_features(
    config: RunConfig | str | Path, out_dir: str | Path, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Train the tail and ``φ`` with NPOS on embedding files, score with MCM, write results.

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
    if config.method.name != "npos_features":
        raise ConfigError(f"method.name must be 'npos_features', got {config.method.name!r}")
    opts = from_dict(NPOSFeatureOptions, config.method.options, where="method.options")
    for key in ("train_features", "train_labels", "class_embeddings"):
        check(bool(getattr(opts, key)), f"method.options.{key} is required (a .npy or .pt path)")
    text = load_features(opts.class_embeddings, "class embeddings")
    x = load_features(opts.train_features, "training features")
    y = load_labels(opts.train_labels, "training labels", len(x), len(text))
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
    )
    classes = l2_normalize(text).to(device)
    log: list[dict[str, float]] = []
    for epoch in tqdm(range(tc.epochs), "npos_features", disable=tc.quiet, leave=False):
        order = torch.randperm(len(x))
        sums = {"loss": 0.0, "cls": 0.0, "open": 0.0}
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
            scheduler.step()
            for key in sums:
                sums[key] += float(terms[key].detach()) / steps
        log.append({"epoch": epoch, **sums})
    out = Path(out_dir)
    save_resolved(config, out / "config.yaml")
    atomic_torch_save(out / "model.pt", {"tail": tail.state_dict(), "phi": phi.state_dict()})
    results: dict[str, Any] = {"method": "npos_features", "score": "mcm", "train_log": log}
    results.update(_evaluate(tail, classes, opts, x.shape[1], device))
    atomic_write_json(out / "results.json", results)
    return results


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
    args = parser.parse_args(argv)
    try:
        results = train_on_features(args.config, args.out_dir, args.overrides)
    except OodlabError as exc:  # one line, as the oodlab CLI
        raise SystemExit(f"error: {exc}") from None
    print({k: v for k, v in results.items() if k in ("id_accuracy", "mean")})


if __name__ == "__main__":
    main()
