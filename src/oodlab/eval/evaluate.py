"""Evaluate a model: every score on every OOD set from one cached forward pass per dataset.

``evaluate`` extracts the ID test set, each OOD set, and (when a score needs them) the
training set and the auxiliary outliers once each; fits every score on the training
outputs; scores the ID test set once and each OOD set once; and computes the metrics of
:mod:`oodlab.eval.metrics` per OOD set, then their unweighted means over the near, far
and all sets. Only scores that need input gradients (ODIN, i-ODIN, Mahalanobis with
input noise) run the network again, and the result says so.

Hyper-parameters of scores with a ``search_space`` can be tuned from the cache
(:mod:`oodlab.eval.tuning`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from oodlab._version import __version__
from oodlab.data.class_names import class_table
from oodlab.errors import ConfigError, DataError
from oodlab.eval import metrics
from oodlab.eval.bootstrap import BootstrapConfig, bootstrap_intervals
from oodlab.eval.extract import ExtractConfig, model_fingerprint, resolve_device
from oodlab.eval.placement import outputs_on
from oodlab.eval.results import EvalResult, ScoreResult, _flagged_per_class
from oodlab.eval.sharded import current_info, extract_sharded
from oodlab.eval.tuning import (
    TUNING_RULE,
    TuneConfig,
    fit_score,
    split_id_test,
    tune_input_score,
    tune_score,
)
from oodlab.scores import SCORES, InputGradientScore, Score
from oodlab.types import Outputs

ScoreSpec = str | Score | tuple[str, Mapping[str, Any]]


def build_score(
    spec: ScoreSpec, class_counts: Sequence[int] | None = None, model: nn.Module | None = None
) -> tuple[str, Score]:
    """A score from a name, ``(name, kwargs)`` or an instance; the prior comes from counts,
    and hyper-parameters that describe the model from the model (MOS: its ``group_sizes``)."""
    if isinstance(spec, Score):
        return _registered_name(spec), spec
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    factory = SCORES.get(name).factory
    group_sizes = getattr(model, "group_sizes", None)
    if name == "mos" and group_sizes is not None and "group_sizes" not in kwargs:
        kwargs["group_sizes"] = list(group_sizes)
    trained_tau = getattr(model, "trained_logit_adjustment", None)  # set by load_model_from_run
    if isinstance(trained_tau, float) and "trained_tau" in _params(factory):
        kwargs.setdefault("trained_tau", trained_tau)
    if class_counts is not None and "prior" not in kwargs and "prior" in _params(factory):
        total = float(sum(class_counts))
        kwargs["prior"] = [c / total for c in class_counts]
    return name, factory(**kwargs)


def _params(factory: Any) -> list[str]:
    return factory.param_names() if isinstance(factory, type) and issubclass(factory, Score) else []


def _registered_name(score: Score) -> str:
    for entry in SCORES:
        if entry.factory is type(score):
            return entry.name
    return type(score).__name__.lower()


def _accuracy(
    logits: Tensor, labels: Tensor, class_counts: Sequence[int] | None, model: Any = None
) -> dict[str, Any]:
    """Top-1 ID accuracy of ``logits`` and, with training counts, many / medium / few-shot.

    A group-softmax model (MOS: ``group_sizes`` and the ``group_class_ids`` buffer) predicts
    with the group-aware rule, mapped back to the original class ids."""
    group_sizes = getattr(model, "group_sizes", None)
    class_ids = getattr(model, "group_class_ids", None)
    if group_sizes and isinstance(class_ids, Tensor):
        from oodlab.scores.mos import mos_predict

        predicted = class_ids.cpu()[mos_predict(logits, group_sizes).cpu()]
    else:
        predicted = logits.argmax(1)
    predictions, truth = predicted.cpu().numpy(), labels.cpu().numpy()
    shot = None
    if class_counts is not None:
        shot = metrics.shot_accuracy(predictions, truth, np.asarray(class_counts))
    return {"id_accuracy": metrics.accuracy(predictions, truth), "shot_accuracy": shot}


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
    unknown = sorted((set(near) | set(far)) - set(ood))
    if unknown:
        raise ConfigError(
            f"near/far name OOD sets that were not given: {unknown}; have {sorted(ood)}"
        )
    if not ood:
        raise ConfigError("no OOD test set given; pass ood={'name': dataset, ...}")
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
    id_out = outputs_of(id_test, "id_test")
    ood_out = {name: outputs_of(ds, name) for name, ds in ood.items()}
    fake = {k: v for k, v in (fake_ood or {}).items() if len(v)}  # type: ignore[arg-type]
    unknown_fake = sorted(set(fake) - set(ood))
    if unknown_fake:
        raise ConfigError(f"fake_ood names sets that are not OOD test sets: {unknown_fake}")
    fake_out = {name: outputs_of(ds, f"{name} (fake OOD)") for name, ds in fake.items()}
    needs_train = any(
        SCORES.get(n).requires_fit and "input_grad" not in SCORES.get(n).needs
        for n, _ in built
        if n in SCORES
    )
    train_out = outputs_of(train, "train") if train is not None and needs_train else None
    uses_aux = tune is not None or any(
        "aux" in SCORES.get(n).needs for n, _ in built if n in SCORES
    )
    aux_out = outputs_of(aux, "aux") if aux is not None and uses_aux else None
    if not info.is_main:  # the other ranks' part ends with their shards of every dataset
        if tune is not None and tune.ood_val is not None:
            outputs_of(tune.ood_val, "ood_val")
        return EvalResult({}, float("nan"), None, tuple(near), tuple(far), {"rank": info.rank})

    id_index = torch.arange(len(id_out))
    val_out: tuple[Outputs, Outputs] | None = None
    val_sets: tuple[Dataset[Any], Dataset[Any]] | None = None  # for input-gradient scores
    tuning_rule = None
    if tune is not None:
        id_index, val_index = split_id_test(len(id_out), tune.val_fraction, tune.seed)
        ood_val = outputs_of(tune.ood_val, "ood_val") if tune.ood_val is not None else aux_out
        if ood_val is None:
            raise ConfigError("tuning needs an OOD validation set: pass tune.ood_val or aux")
        which = "tune.ood_val" if tune.ood_val is not None else "the auxiliary outliers"
        source = tune.ood_val if tune.ood_val is not None else aux
        label = getattr(source, "name", None)
        which += f" {label}" if isinstance(label, str) else ""
        tuning_rule = TUNING_RULE.format(tune.val_fraction, f"{which}, {len(ood_val)} images")
        val_out = (id_out.subset(val_index), ood_val)
        if source is not None:
            val_sets = (Subset(id_test, val_index.tolist()), source)
        id_out = id_out.subset(id_index)

    results: dict[str, ScoreResult] = {}
    skipped: dict[str, str] = {}
    raw: dict[str, dict[str, np.ndarray]] = {}
    while built:  # popped, so each fitted score is freed before the next one is fitted
        name, score = built.pop(0)
        start = time.perf_counter()
        try:
            tuning = None
            if (
                val_out is not None
                and score.search_space
                and not isinstance(score, InputGradientScore)
            ):
                score, tuning = tune_score(score, name, train_out, aux_out, *val_out)
            fit_inputs = getattr(score, "fit_inputs", None)
            if callable(fit_inputs):
                if train is None:
                    raise DataError(
                        f"score {name!r} is fitted on the training inputs; pass train=..."
                    )
                fit_inputs(model.to(device), _input_batches(train, config, device))
            else:
                score = fit_score(score, name, train_out, aux_out)
            if (
                val_sets is not None
                and score.search_space
                and isinstance(score, InputGradientScore)
            ):
                score, tuning = tune_input_score(
                    score,
                    name,
                    functools.partial(
                        _score_candidate, model=model, config=config, device=device, name=name
                    ),
                    *val_sets,
                    quiet=config.quiet,
                )
            if isinstance(score, InputGradientScore):
                id_scores = _score_inputs(score, model, id_test, config, device, name)[id_index]
                set_scores = {
                    k: _score_inputs(score, model, ds, config, device, name)
                    for k, ds in ood.items()
                }
                fake_scores = {
                    k: _score_inputs(score, model, ds, config, device, name)
                    for k, ds in fake.items()
                }
            else:
                id_scores = score.score(id_out).cpu()  # to the host for the metrics
                set_scores = {k: score.score(v).cpu() for k, v in ood_out.items()}
                fake_scores = {k: score.score(v).cpu() for k, v in fake_out.items()}
        except DataError as exc:
            if not skip_unavailable:
                raise
            skipped[name] = str(exc)
            continue
        per_set = {
            k: metrics.ood_metrics(_with_fake(id_scores, fake_scores.get(k)), v)
            for k, v in set_scores.items()
        }
        # A score that re-weights the classifier (PATT's calibration) also classifies with it.
        calibrated = getattr(score, "calibrated_logits", None)
        results[name] = ScoreResult(
            name=name,
            params=score.get_params(),
            per_set=per_set,
            means=group_means(per_set, near, far),
            needs_network=isinstance(score, InputGradientScore),
            tuning=tuning,
            seconds=time.perf_counter() - start,
            accuracy=_accuracy(calibrated(id_out), id_out.labels, class_counts)
            if callable(calibrated)
            else None,
            note=_note(score),
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
        raw[name] = {"id": id_scores.numpy(), **{k: v.numpy() for k, v in set_scores.items()}}

    # A model with a separate classification branch (PASCL's ABF) classifies with it.
    accuracy = _accuracy(
        id_out.extras.get("class_logits", id_out.logits), id_out.labels, class_counts, model
    )
    num_classes = len(class_counts) if class_counts is not None else id_out.num_classes
    result = EvalResult(
        scores=results,
        id_accuracy=accuracy["id_accuracy"],
        shot_accuracy=accuracy["shot_accuracy"],
        near=tuple(near),
        far=tuple(far),
        meta={
            "oodlab_version": __version__,
            "model": model_key,
            "sizes": {"id_test": len(id_out), **{k: len(v) for k, v in ood_out.items()}},
            "network_passes": forwards,
            "tuning_rule": tuning_rule,
        },
        skipped=skipped,
        omitted={k: v for k, v in (omitted or {}).items() if k not in results},
        raw=raw,
        per_class_flagged=_flagged_per_class(raw, id_out.labels.cpu().numpy(), num_classes),
        classes=class_table(num_classes, class_names, class_counts),
    )
    if out_dir is not None:
        from oodlab.eval.report import write_report

        write_report(result, out_dir, plots=plots)
    return result


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


def _note(score: Score) -> str | None:
    """A score's one-line statement of a choice it made (e.g. the ImOOD ``τ_LA``), if any."""
    note = getattr(score, "note", None)
    return note() if callable(note) else None


def _with_fake(id_scores: Tensor, fake_scores: Tensor | None) -> Tensor:
    """The ID side of one OOD set's pair: the ID test set plus that set's fake OOD images."""
    return id_scores if fake_scores is None else torch.cat([id_scores, fake_scores])


def _input_batches(
    dataset: Dataset[Any], config: ExtractConfig, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.num_workers)
    for batch in tqdm(loader, desc="fit (inputs)", disable=config.quiet, leave=False):
        yield batch[0].to(device), torch.as_tensor(batch[1])


def _score_candidate(
    score: Score,
    dataset: Dataset[Any],
    *,
    model: nn.Module,
    config: ExtractConfig,
    device: torch.device,
    name: str,
) -> Tensor:
    """One tuning candidate of an input-gradient score on one validation set."""
    assert isinstance(score, InputGradientScore)  # candidates are of the tuned score's type
    return _score_inputs(score, model, dataset, config, device, f"{name} (tuning)")


def _score_inputs(
    score: InputGradientScore,
    model: nn.Module,
    dataset: Dataset[Any],
    config: ExtractConfig,
    device: torch.device,
    name: str,
) -> Tensor:
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.num_workers)
    model.to(device).eval()
    out = [
        score.score_inputs(model, batch[0].to(device)).detach().float().cpu()
        for batch in tqdm(
            loader, desc=f"{name} (input gradients)", disable=config.quiet, leave=False
        )
    ]
    return torch.cat(out)
