"""Evaluate a model: every score on every OOD set from one cached forward pass per dataset.

``evaluate`` extracts the ID test set, each OOD set, and (when a score needs them) the
training set and the auxiliary outliers once each; fits every score on the training
outputs; scores the ID test set once and each OOD set once; and computes the metrics of
:mod:`oodlab.eval.metrics` per OOD set, then their unweighted means over the near, far
and all sets. Only scores that need input gradients (ODIN, i-ODIN, Mahalanobis with
input noise) run the network again, and the result says so.

What a score needs beyond the cached outputs (the training outputs, the auxiliary outliers,
the model's groups, input gradients, …) it declares in its registry entry, and
:mod:`oodlab.eval.needs` provides it: nothing here tests a score or a model by name.
Hyper-parameters of scores with a ``search_space`` can be tuned from the cache
(:mod:`oodlab.eval.tuning`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from oodlab._version import __version__
from oodlab.data.class_names import class_table
from oodlab.errors import ConfigError, DataError
from oodlab.eval import metrics
from oodlab.eval.bootstrap import BootstrapConfig, bootstrap_intervals
from oodlab.eval.extract import ExtractConfig, model_fingerprint, resolve_device
from oodlab.eval.needs import (
    EvalContext,
    Provider,
    build_kwargs,
    classifier_logits,
    classify,
    default_fit,
    default_score,
    hook,
    providers_of,
)
from oodlab.eval.placement import outputs_on
from oodlab.eval.results import EvalResult, ScoreResult, _flagged_per_class
from oodlab.eval.sharded import current_info, extract_sharded
from oodlab.eval.tuning import TUNING_RULE, TuneConfig, split_id_test, tune_score
from oodlab.scores import SCORES, Score
from oodlab.types import Outputs

ScoreSpec = str | Score | tuple[str, Mapping[str, Any]]


def build_score(
    spec: ScoreSpec, class_counts: Sequence[int] | None = None, model: nn.Module | None = None
) -> tuple[str, Score]:
    """A score from a name, ``(name, kwargs)`` or an instance; hyper-parameters a declared need
    provides (the prior from the counts, MOS's ``group_sizes`` from the model, the trained
    ``τ``) are filled in unless given."""
    if isinstance(spec, Score):
        return _registered_name(spec), spec
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    entry = SCORES.get(name)
    for key, value in build_kwargs(entry.needs, entry.factory, model, class_counts).items():
        kwargs.setdefault(key, value)
    return name, entry.factory(**kwargs)


def _registered_name(score: Score) -> str:
    for entry in SCORES:
        if entry.factory is type(score):
            return entry.name
    return type(score).__name__.lower()


def evaluate(
    model: nn.Module,
    id_test: Dataset[Any],
    ood: Mapping[str, Dataset[Any]],
    scores: Sequence[ScoreSpec] = ("msp", "energy"),
    *,
    train: Dataset[Any] | None = None,
    aux: Dataset[Any] | None = None,
    near: Sequence[str] = (),
    far: Sequence[str] = (),
    class_counts: Sequence[int] | None = None,
    fake_ood: Mapping[str, Dataset[Any]] | None = None,
    extract_config: ExtractConfig | None = None,
    tune: TuneConfig | None = None,
    skip_unavailable: bool = False,
    omitted: Mapping[str, str] | None = None,
    out_dir: str | Path | None = None,
    plots: bool = True,
    bootstrap: BootstrapConfig | None = None,
    class_names: Sequence[str] | None = None,
) -> EvalResult:
    """Evaluate ``model`` with several scores on several OOD sets.

    The steps: check the set names; build every score; extract the cached outputs (ID test,
    OOD sets, and what the scores' declared needs ask for, :mod:`oodlab.eval.needs`); split a
    validation part off for tuning; run each score (tune → fit → score → metrics); assemble.

    Args:
        model: a classifier following :class:`oodlab.types.FeatureClassifier`, or any module
            whose last ``nn.Linear`` is the classifier.
        id_test: ID test set yielding ``(image, label)``.
        ood: OOD test sets by name.
        scores: score names, ``(name, kwargs)`` pairs, or :class:`~oodlab.scores.Score` objects.
        train: ID training set (needed by scores that are fitted, e.g. Mahalanobis, KNN).
        aux: auxiliary outliers (PATT calibration; the default OOD validation set for tuning).
        near, far: names of the near- and far-OOD sets, for the group means.
        class_counts: training images per class, for shot-group accuracy and the ImOOD prior.
        fake_ood: per OOD set, its images that are semantically ID (SC-OOD's ``sc_label >= 0``);
            they count as ID when that set's metrics are computed, as PASCL / ImOOD / PATT do.
        extract_config: batch size, device, cache folder, progress bars.
        tune: tune every score that has a search space, on a validation split (see module doc).
        skip_unavailable: skip (and record why) scores whose needs these outputs cannot meet,
            instead of raising; used for the "whole zoo" evaluation.
        omitted: scores the caller left out on purpose, and why (the zoo's input-gradient
            scores, :func:`oodlab.eval.cli.zoo_omitted`); recorded in the results.
        out_dir: if given, write results.json / .csv / .md and figures there.
        plots: draw the score histograms and ROC curves when ``out_dir`` is given.
        bootstrap: replicates and seed of the 95% intervals of AUROC and FPR95 per set and
            group mean (:mod:`oodlab.eval.bootstrap`; default 1000 replicates, seed 0;
            ``BootstrapConfig(samples=0)`` turns them off).
        class_names: ID class names in label order (``oodlab.data.class_names``), for the
            per-class json and figures; ``class 0``, ``class 1``, … when not given.
    """
    config = extract_config or ExtractConfig()
    bootstrap = BootstrapConfig() if bootstrap is None else bootstrap
    fake = _check_sets(ood, near, far, fake_ood)
    model_key = model_fingerprint(model)
    forwards: list[str] = []
    info = current_info()  # under torchrun: every rank extracts a shard, rank 0 does the rest
    device = resolve_device(config.device)  # outputs move there once; every score runs there

    def outputs_of(dataset: Dataset[Any], name: str) -> Outputs:
        out = extract_sharded(
            model, dataset, config, name=name, model_key=model_key,
            on_forward=forwards.append, info=info,
        )  # fmt: skip
        return cast(Outputs, None if out is None else outputs_on(out, device))  # None: rank > 0

    built = [build_score(spec, class_counts, model) for spec in scores]
    providers = {name: providers_of(name, score) for name, score in built}
    ctx = EvalContext(model, config, id_test, ood, fake, train, aux, class_counts)
    id_out = outputs_of(id_test, "id_test")
    ctx.ood_out = {name: outputs_of(ds, name) for name, ds in ood.items()}
    ctx.fake_out = {name: outputs_of(ds, f"{name} (fake OOD)") for name, ds in fake.items()}
    wanted = {role for ps in providers.values() for p in ps for role in p.outputs}
    if train is not None and "train" in wanted:
        ctx.train_out = outputs_of(train, "train")
    if aux is not None and (tune is not None or "aux" in wanted):
        ctx.aux_out = outputs_of(aux, "aux")
    if not info.is_main:  # the other ranks' part ends with their shards of every dataset
        if tune is not None and tune.ood_val is not None:
            outputs_of(tune.ood_val, "ood_val")
        return EvalResult({}, float("nan"), None, tuple(near), tuple(far), {"rank": info.rank})
    ctx.id_out, ctx.id_index = id_out, torch.arange(len(id_out))
    tuning_rule = _tuning_split(ctx, tune, outputs_of) if tune is not None else None

    results: dict[str, ScoreResult] = {}
    skipped: dict[str, str] = {}
    raw: dict[str, dict[str, np.ndarray]] = {}
    while built:  # popped, so each fitted score is freed before the next one is fitted
        name, score = built.pop(0)
        try:
            results[name], raw[name] = _run_score(
                ctx, name, score, providers.pop(name), near, far, bootstrap
            )
        except DataError as exc:
            if not skip_unavailable:
                raise
            skipped[name] = str(exc)
    result = _assemble(
        ctx, results, skipped, raw, (near, far), model_key, forwards, tuning_rule, class_names
    )
    result.omitted = {k: v for k, v in (omitted or {}).items() if k not in results}
    if out_dir is not None:
        from oodlab.eval.report import write_report

        write_report(result, out_dir, plots=plots)
    return result


def _check_sets(
    ood: Mapping[str, Dataset[Any]],
    near: Sequence[str],
    far: Sequence[str],
    fake_ood: Mapping[str, Dataset[Any]] | None,
) -> dict[str, Dataset[Any]]:
    """The non-empty fake-OOD sets, after checking that every set name refers to an OOD set."""
    unknown = sorted((set(near) | set(far)) - set(ood))
    if unknown:
        raise ConfigError(
            f"near/far name OOD sets that were not given: {unknown}; have {sorted(ood)}"
        )
    if not ood:
        raise ConfigError("no OOD test set given; pass ood={'name': dataset, ...}")
    fake = {k: v for k, v in (fake_ood or {}).items() if len(v)}  # type: ignore[arg-type]
    unknown_fake = sorted(set(fake) - set(ood))
    if unknown_fake:
        raise ConfigError(f"fake_ood names sets that are not OOD test sets: {unknown_fake}")
    return fake


def _tuning_split(
    ctx: EvalContext, tune: TuneConfig, outputs_of: Callable[[Dataset[Any], str], Outputs]
) -> str:
    """Split the ID test outputs into (test, validation), set the validation outputs (and, for
    scores that run the network, the validation datasets) on ``ctx``; the tuning rule."""
    id_out, _ = ctx.ready_id()
    id_index, val_index = split_id_test(len(id_out), tune.val_fraction, tune.seed)
    ood_val = outputs_of(tune.ood_val, "ood_val") if tune.ood_val is not None else ctx.aux_out
    if ood_val is None:
        raise ConfigError("tuning needs an OOD validation set: pass tune.ood_val or aux")
    which = "tune.ood_val" if tune.ood_val is not None else "the auxiliary outliers"
    source = tune.ood_val if tune.ood_val is not None else ctx.aux
    label = getattr(source, "name", None)
    which += f" {label}" if isinstance(label, str) else ""
    ctx.val_out = (id_out.subset(val_index), ood_val)
    if source is not None:
        ctx.val_sets = (Subset(ctx.id_test, val_index.tolist()), source)
    ctx.id_out, ctx.id_index = id_out.subset(id_index), id_index
    return TUNING_RULE.format(tune.val_fraction, f"{which}, {len(ood_val)} images")


def _run_score(
    ctx: EvalContext,
    name: str,
    score: Score,
    providers: Sequence[Provider],
    near: Sequence[str],
    far: Sequence[str],
    bootstrap: BootstrapConfig,
) -> tuple[ScoreResult, dict[str, np.ndarray]]:
    """One score through tune → fit → score → metrics (a declared need may replace a step).

    A need with a ``tune`` hook tunes after fitting (the network runs per candidate); the
    others are tuned on the cached validation outputs before fitting."""
    start = time.perf_counter()
    tuning = None
    tune_after_fit = hook(providers, "tune", name)
    if ctx.val_out is not None and score.search_space and tune_after_fit is None:
        score, tuning = tune_score(score, name, ctx.train_out, ctx.aux_out, *ctx.val_out)
    score = (hook(providers, "fit", name) or default_fit)(ctx, score, name)
    if ctx.val_sets is not None and score.search_space and tune_after_fit is not None:
        score, tuning = tune_after_fit(ctx, score, name)
    id_scores, set_scores, fake_scores = (hook(providers, "score", name) or default_score)(
        ctx, score, name
    )
    per_set = {
        k: metrics.ood_metrics(_with_fake(id_scores, fake_scores.get(k)), v)
        for k, v in set_scores.items()
    }
    accuracy: dict[str, Any] = {}
    for provider in providers:
        if provider.classify is not None:
            accuracy.update(provider.classify(ctx, score))
    result = ScoreResult(
        name=name,
        params=score.get_params(),
        per_set=per_set,
        means=group_means(per_set, near, far),
        needs_network=any(p.network for p in providers),
        tuning=tuning,
        seconds=time.perf_counter() - start,
        accuracy=accuracy or None,
        note=score.note(),
        intervals=bootstrap_intervals(
            id_scores.numpy(),
            {k: v.numpy() for k, v in set_scores.items()},
            {"near": near, "far": far, "all": list(set_scores)},
            {k: v.numpy() for k, v in fake_scores.items()},
            bootstrap,
        )
        if bootstrap.samples
        else None,
    )
    return result, {"id": id_scores.numpy(), **{k: v.numpy() for k, v in set_scores.items()}}


def _assemble(
    ctx: EvalContext,
    results: dict[str, ScoreResult],
    skipped: dict[str, str],
    raw: dict[str, dict[str, np.ndarray]],
    groups: tuple[Sequence[str], Sequence[str]],
    model_key: str,
    forwards: list[str],
    tuning_rule: str | None,
    class_names: Sequence[str] | None,
) -> EvalResult:
    """The result: the model's own ID accuracy, the per-class figures and the metadata."""
    id_out, _ = ctx.ready_id()
    class_counts = ctx.class_counts
    accuracy = classify(classifier_logits(id_out), id_out.labels, class_counts, ctx.model)
    num_classes = len(class_counts) if class_counts is not None else id_out.num_classes
    return EvalResult(
        scores=results,
        id_accuracy=accuracy["id_accuracy"],
        shot_accuracy=accuracy["shot_accuracy"],
        near=tuple(groups[0]),
        far=tuple(groups[1]),
        meta={
            "oodlab_version": __version__,
            "model": model_key,
            "sizes": {"id_test": len(id_out), **{k: len(v) for k, v in ctx.ood_out.items()}},
            "network_passes": forwards,
            "tuning_rule": tuning_rule,
        },
        skipped=skipped,
        raw=raw,
        per_class_flagged=_flagged_per_class(raw, id_out.labels.cpu().numpy(), num_classes),
        classes=class_table(num_classes, class_names, class_counts),
    )


def group_means(
    per_set: Mapping[str, Mapping[str, float]], near: Sequence[str], far: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Unweighted means of every metric over the near sets, the far sets and all sets."""
    groups = {"near": list(near), "far": list(far), "all": list(per_set)}
    means = {}
    for group, names in groups.items():
        if names:
            keys = per_set[names[0]].keys()
            means[group] = {k: float(np.mean([per_set[n][k] for n in names])) for k in keys}
    return means


def _with_fake(id_scores: Tensor, fake_scores: Tensor | None) -> Tensor:
    """The ID side of one OOD set's pair: the ID test set plus that set's fake OOD images."""
    return id_scores if fake_scores is None else torch.cat([id_scores, fake_scores])
