"""What a score needs, and how ``evaluate`` provides it: one table, :data:`NEEDS`.

A score declares its needs in its registry entry (``@register_score(name, needs=(...))``).
:func:`oodlab.eval.evaluate.evaluate` runs every score through the same steps, and each
declared need may take part in some of them (a :class:`Provider`):

* ``build``    constructor arguments taken from the evaluation (MOS's ``group_sizes`` from the
  model's groups, the ImOOD / PATT class prior from the training counts);
* ``outputs``  which cached outputs beyond the ID and OOD test sets are extracted (the
  training set, the auxiliary outliers) before any score runs;
* ``fit``      replaces the default fit on cached outputs (``score.fit(train, aux=aux)``);
* ``tune``     replaces tuning on the cached validation outputs before fitting: it tunes the
  fitted score after ``fit`` (input-gradient scores, one network pass per candidate);
* ``score``    replaces scoring the cached outputs (``score.score(outputs)``);
* ``classify`` adds an ID accuracy of the score's own classifier to its result.

A need without any of these (``"logits"``, ``"features"``, …) is met by the cached outputs
themselves. Adding a score with a new kind of need touches two places: the score's file
(its entry declares the need) and this table (``register_need``, or one more line below);
``evaluate`` is not edited. The facts of a *model* that evaluation reads (its groups, a
separate classification branch) are read here too, in :func:`model_groups` and
:func:`classifier_logits`.
An entry with ``requires_fit=True`` needs the training outputs (``"train"``) unless it
declares ``"train_inputs"`` (fitted on the inputs instead).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from oodlab.errors import ConfigError, DataError
from oodlab.eval import metrics
from oodlab.eval.extract import ExtractConfig, resolve_device
from oodlab.eval.tuning import fit_score, tune_input_score
from oodlab.scores import SCORES, InputGradientScore, Score
from oodlab.types import Outputs

#: Per-sample scores of one score: the ID test set, each OOD set, each set's fake OOD images.
Scored = tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]


@dataclass
class EvalContext:
    """What the evaluation holds while it runs the scores; providers read from it.

    ``id_out`` / ``id_index`` are the ID test outputs and their rows in ``id_test`` (the rows
    left for testing when a validation split is taken for tuning); with tuning, ``val_out``
    is the (ID, OOD) validation outputs and ``val_sets`` the same as datasets.
    """

    model: nn.Module
    config: ExtractConfig
    id_test: Dataset[Any]
    ood: Mapping[str, Dataset[Any]]
    fake: Mapping[str, Dataset[Any]]
    train: Dataset[Any] | None
    aux: Dataset[Any] | None
    class_counts: Sequence[int] | None
    id_out: Outputs | None = None
    id_index: Tensor | None = None
    ood_out: dict[str, Outputs] = field(default_factory=dict)
    fake_out: dict[str, Outputs] = field(default_factory=dict)
    train_out: Outputs | None = None
    aux_out: Outputs | None = None
    val_out: tuple[Outputs, Outputs] | None = None
    val_sets: tuple[Dataset[Any], Dataset[Any]] | None = None

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    def ready_id(self) -> tuple[Outputs, Tensor]:
        if self.id_out is None or self.id_index is None:
            raise RuntimeError("the ID test outputs are extracted before any score runs")
        return self.id_out, self.id_index


@dataclass(frozen=True)
class Provider:
    """How ``evaluate`` meets one need; every hook is optional (see the module docstring)."""

    doc: str
    outputs: tuple[str, ...] = ()  # "train" / "aux": cached outputs to extract
    build: Callable[[nn.Module | None, Sequence[int] | None, list[str]], dict[str, Any]] | None = (
        None
    )
    fit: Callable[[EvalContext, Score, str], Score] | None = None
    tune: Callable[[EvalContext, Score, str], tuple[Score, dict[str, Any]]] | None = None
    score: Callable[[EvalContext, Score, str], Scored] | None = None
    classify: Callable[[EvalContext, Score], dict[str, Any]] | None = None
    network: bool = False  # scoring runs the network again (reported as needs_network)


NEEDS: dict[str, Provider] = {}


def register_need(name: str, provider: Provider) -> Provider:
    """Add ``provider`` for the need ``name`` (a need's prefix before ``:`` also matches)."""
    if name in NEEDS:
        raise ValueError(f"need {name!r} already has a provider")
    NEEDS[name] = provider
    return provider


def needs_of(name: str, score: Score) -> tuple[str, ...]:
    """The needs ``score`` (known under ``name``) declares; ``requires_fit`` implies ``train``.

    An unregistered :class:`~oodlab.scores.InputGradientScore` needs the model and input
    gradients; another unregistered score only the cached outputs."""
    if name in SCORES:
        entry = SCORES.get(name)
        needs = entry.needs
        if entry.requires_fit and "train_inputs" not in needs:
            needs = (*needs, "train")
        return needs
    return ("model", "input_grad") if isinstance(score, InputGradientScore) else ()


def providers_of(name: str, score: Score) -> list[Provider]:
    """The providers of every need of ``score``; an unknown need raises one line."""
    out = []
    for need in needs_of(name, score):
        provider = NEEDS.get(need, NEEDS.get(need.split(":", 1)[0]))
        if provider is None:
            raise ConfigError(
                f"score {name!r} declares the need {need!r}, which evaluate cannot provide; "
                f"known needs: {', '.join(sorted(NEEDS))}; add a provider with "
                "oodlab.eval.needs.register_need"
            )
        out.append(provider)
    return out


def build_kwargs(
    needs: Sequence[str],
    factory: Any,
    model: nn.Module | None,
    class_counts: Sequence[int] | None,
) -> dict[str, Any]:
    """The constructor arguments the ``build`` hooks of ``needs`` provide for ``factory``."""
    is_score = isinstance(factory, type) and issubclass(factory, Score)
    params = factory.param_names() if is_score else []
    kwargs: dict[str, Any] = {}
    for need in needs:
        provider = NEEDS.get(need, NEEDS.get(need.split(":", 1)[0]))
        if provider is not None and provider.build is not None:
            kwargs.update(provider.build(model, class_counts, params))
    return kwargs


def hook(providers: Sequence[Provider], step: str, name: str) -> Any:
    """The one provider hook for ``step`` (``fit`` / ``tune`` / ``score``), or ``None``; two is
    an error."""
    hooks = [getattr(p, step) for p in providers if getattr(p, step) is not None]
    if len(hooks) > 1:
        raise ConfigError(f"score {name!r} declares two needs that both replace its {step} step")
    return hooks[0] if hooks else None


# -- the model's groups (MOS's group-softmax classifier) ----------------------------------------
def model_groups(model: nn.Module | None) -> tuple[list[int], Tensor | None] | None:
    """A group-softmax model's ``group_sizes`` and its flat-index → class-id map, or ``None``.

    The one place evaluation reads a model's groups (:class:`oodlab.models.heads.WithHeads`
    exposes ``group_sizes``; the MOS recipe registers the ``group_class_ids`` buffer)."""
    sizes = getattr(model, "group_sizes", None)
    if not sizes:
        return None
    class_ids = getattr(model, "group_class_ids", None)
    return list(sizes), class_ids if isinstance(class_ids, Tensor) else None


def classifier_logits(outputs: Outputs) -> Tensor:
    """The logits the model classifies with: a separate classification branch's
    ``class_logits`` extra (PASCL's ABF, :mod:`oodlab.models.two_branch`), else the logits."""
    return outputs.extras.get("class_logits", outputs.logits)


def classify(
    logits: Tensor, labels: Tensor, class_counts: Sequence[int] | None, model: Any = None
) -> dict[str, Any]:
    """Top-1 ID accuracy of ``logits`` and, with training counts, many / medium / few-shot.

    A group-softmax model (its groups and class-id map) predicts with the group-aware rule,
    mapped back to the original class ids."""
    groups = model_groups(model)
    if groups is not None and groups[1] is not None:
        from oodlab.scores.mos import mos_predict

        predicted = groups[1].cpu()[mos_predict(logits, groups[0]).cpu()]
    else:
        predicted = logits.argmax(1)
    predictions, truth = predicted.cpu().numpy(), labels.cpu().numpy()
    shot = None
    if class_counts is not None:
        shot = metrics.shot_accuracy(predictions, truth, np.asarray(class_counts))
    return {"id_accuracy": metrics.accuracy(predictions, truth), "shot_accuracy": shot}


# -- the default steps and the providers ------------------------------------------------------
def default_fit(ctx: EvalContext, score: Score, name: str) -> Score:
    return fit_score(score, name, ctx.train_out, ctx.aux_out)


def default_score(ctx: EvalContext, score: Score, name: str) -> Scored:
    id_out, _ = ctx.ready_id()
    return (  # to the host for the metrics
        score.score(id_out).cpu(),
        {k: score.score(v).cpu() for k, v in ctx.ood_out.items()},
        {k: score.score(v).cpu() for k, v in ctx.fake_out.items()},
    )


def input_batches(
    dataset: Dataset[Any], config: ExtractConfig, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    loader = _input_loader(dataset, config, device)
    for batch in tqdm(loader, desc="fit (inputs)", disable=config.quiet, leave=False):
        yield batch[0].to(device, non_blocking=True), torch.as_tensor(batch[1])


def _input_loader(
    dataset: Dataset[Any], config: ExtractConfig, device: torch.device
) -> DataLoader[Any]:
    """The loader of a pass that re-runs the network (pinned batches on CUDA)."""
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )


def _fit_on_inputs(ctx: EvalContext, score: Score, name: str) -> Score:
    if ctx.train is None:
        raise DataError(f"score {name!r} is fitted on the training inputs; pass train=...")
    device = ctx.device
    score.fit_inputs(ctx.model.to(device), input_batches(ctx.train, ctx.config, device))  # type: ignore[attr-defined]
    return score


def score_inputs(
    score: InputGradientScore,
    model: nn.Module,
    dataset: Dataset[Any],
    config: ExtractConfig,
    device: torch.device,
    name: str,
) -> Tensor:
    """``score.score_inputs`` over ``dataset`` in batches: the network runs again."""
    loader = _input_loader(dataset, config, device)
    model.to(device).eval()
    out = [
        score.score_inputs(model, batch[0].to(device, non_blocking=True)).detach().float().cpu()
        for batch in tqdm(
            loader, desc=f"{name} (input gradients)", disable=config.quiet, leave=False
        )
    ]
    return torch.cat(out)


def _score_on_inputs(ctx: EvalContext, score: Score, name: str) -> Scored:
    if not isinstance(score, InputGradientScore):
        raise ConfigError(f"score {name!r} needs input gradients but is no InputGradientScore")
    _, id_index = ctx.ready_id()
    device = ctx.device

    def run(dataset: Dataset[Any]) -> Tensor:
        return score_inputs(score, ctx.model, dataset, ctx.config, device, name)

    return (
        run(ctx.id_test)[id_index],
        {k: run(ds) for k, ds in ctx.ood.items()},
        {k: run(ds) for k, ds in ctx.fake.items()},
    )


def _tune_on_inputs(ctx: EvalContext, score: Score, name: str) -> tuple[Score, dict[str, Any]]:
    if ctx.val_sets is None:
        raise RuntimeError("the validation sets are split off before any score is tuned")
    device = ctx.device
    run = functools.partial(
        _score_candidate, model=ctx.model, config=ctx.config, device=device, name=name
    )
    return tune_input_score(score, name, run, *ctx.val_sets, quiet=ctx.config.quiet)


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
    return score_inputs(score, model, dataset, config, device, f"{name} (tuning)")


def _calibrated_accuracy(ctx: EvalContext, score: Score) -> dict[str, Any]:
    id_out, _ = ctx.ready_id()
    logits = score.calibrated_logits(id_out)  # type: ignore[attr-defined]
    return classify(logits, id_out.labels, ctx.class_counts)


def _group_sizes(
    model: nn.Module | None, class_counts: Sequence[int] | None, params: list[str]
) -> dict[str, Any]:
    groups = model_groups(model)
    return {"group_sizes": groups[0]} if groups is not None else {}


def _prior(
    model: nn.Module | None, class_counts: Sequence[int] | None, params: list[str]
) -> dict[str, Any]:
    if class_counts is None or "prior" not in params:
        return {}
    total = float(sum(class_counts))
    return {"prior": [c / total for c in class_counts]}


def _logit_adjustment(
    model: nn.Module | None, class_counts: Sequence[int] | None, params: list[str]
) -> dict[str, Any]:
    # Set on the model by oodlab.train.run.load_model_from_run from the run's recipe.
    tau = getattr(model, "trained_logit_adjustment", None)
    return {"trained_tau": tau} if isinstance(tau, float) and "trained_tau" in params else {}


_OUTPUT = "met by the cached outputs"
for _field in ("logits", "features", "labels", "head_weight", "extras"):
    register_need(_field, Provider(f"{_field}: {_OUTPUT}"))
register_need("model", Provider("the model itself (the hooks of the needs below receive it)"))
register_need("train", Provider("the training set's cached outputs", outputs=("train",)))
register_need("aux", Provider("the auxiliary outliers' cached outputs", outputs=("aux",)))
register_need("prior", Provider("the class prior π from the training counts", build=_prior))
register_need(
    "logit_adjustment",
    Provider("the τ the model was trained with (ImOOD's residual τ_LA)", build=_logit_adjustment),
)
register_need("groups", Provider("the model's groups (MOS's group_sizes)", build=_group_sizes))
register_need(
    "train_inputs", Provider("fitted on training inputs: score.fit_inputs", fit=_fit_on_inputs)
)
register_need(
    "input_grad",
    Provider(
        "scored on inputs: score.score_inputs (and tuned on them, after fitting)",
        score=_score_on_inputs,
        tune=_tune_on_inputs,
        network=True,
    ),
)
register_need(
    "calibrated_classifier",
    Provider("its own ID accuracy: score.calibrated_logits", classify=_calibrated_accuracy),
)

__all__ = [
    "NEEDS",
    "EvalContext",
    "Provider",
    "Scored",
    "build_kwargs",
    "classifier_logits",
    "classify",
    "model_groups",
    "needs_of",
    "providers_of",
    "register_need",
]
