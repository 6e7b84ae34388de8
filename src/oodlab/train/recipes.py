"""How a training method plugs into the one loop: a recipe.

There is one training loop (:func:`oodlab.train.loop.train`); a method never writes its own.
It supplies a :class:`Recipe` — its loss, its batch composition, and optional hooks — and
registers it in :data:`METHODS` with its hyper-parameter dataclass::

    @dataclass(frozen=True)
    class OEOptions:
        weight: float = 0.5

    @register_method("oe", config_type=OEOptions, paper="Hendrycks et al., ICLR 2019, ...")
    class OERecipe(Recipe):
        uses_aux = True

        def loss(self, net, batch):
            out = forward_concat(net, [batch.x, batch.x_aux])  # one forward, shared BN
            id_logits, aux_logits = out.parts("logits")
            ...
            return loss, {"ce": ce.detach(), "oe": oe.detach()}

Recipes live in ``oodlab/train/methods/<name>.py`` (imported by ``methods/__init__.py``);
their losses in ``oodlab/losses/<paper>.py``. ``method.options`` of the run config is
validated against ``config_type`` (unknown keys and wrong types fail with one line).

**Batch composition** (class attributes, or set in ``__init__`` from the options):

* ``views``: augmented views of each ID image per step (PASCL / ImOOD / NPOS 2, PATT 3);
  ``batch.views`` is a list of ``(B, C, H, W)`` tensors, ``batch.x`` the first;
* ``uses_aux``: also draw ``batch.x_aux``, a batch of auxiliary outliers (OE, PASCL, ImOOD,
  PATT), cycled endlessly beside the ID set;
* ``heads``: extra heads beside the classifier, ``{name: {"kind": kind, **options}}`` with
  kinds from :data:`oodlab.models.heads.HEADS` (``projection``, ``bin_logit``, ``linear``, …);
  ``classifier`` replaces the classifier (MOS: ``{"kind": "group_softmax", "group_sizes":
  [...]}``); ``zscore_sigma`` classifies z-scored features (ASCOOD); ``num_outputs(C)`` sets
  the classifier's size (ImOOD's bin_disc: ``C + 1``). The model builder attaches these, both
  for training and when :func:`~oodlab.train.run.load_model_from_run` rebuilds the model;
* ``stages(config)``: the training stages, each with its own optimiser settings, batch sizes,
  views, use of outliers and, if needed, training transforms (default: one stage from
  ``config.train``; PASCL adds its auxiliary-branch fine-tuning as a second stage on ID data
  only; PATT's stage asks for ``transform="patt_views"``, ``aux_transform="patt_aux"``).

**The step.** ``loss(net, batch) -> (loss, logs)`` computes the objective. ``net`` is the
DDP-wrapped :class:`TrainView`; run **one** concatenated forward over every ID view and the
outliers with :func:`forward_concat` (BatchNorm statistics are then shared, as the papers
do), asking for the extra-head outputs it needs (``heads=("projection",)``) or for any
other computation on the features inside the same forward (``fn``: NPOS's uncertainty MLP on
its synthesised features). ``batch.model`` is the unwrapped model for passes outside that
forward: ASCOOD's input-gradient attribution (eval mode, ``torch.autograd.grad`` with
respect to the input only, before the forward). ``logs`` are detached scalar tensors; the
loop averages them per epoch without synchronising the device each step.

**Hooks**, all optional:

* ``prepare_model(model)``: final touches after the heads are attached (zero-init, buffers);
* ``on_stage_start(stage, model)``: before a stage's optimiser is built — freeze parameters
  (``requires_grad_``), copy a branch (PASCL ABF, MOS's frozen backbone). On resume it runs
  before the checkpointed weights are restored;
* ``train_mode(model, stage)``: which modules are in train mode (default: all; MOS keeps the
  frozen backbone in eval mode);
* ``param_groups(model, config)``: optimiser parameter groups with their own learning rates
  (default: body, and the linear classifier at ``lr · head_lr_factor``);
* ``on_epoch_start(epoch, stage)``: per-epoch schedules (ASCOOD's α, NPOS's start epoch);
* ``after_step(batch)``: after each optimiser step (EMA prototypes, queues);
* ``predict(model, x)``: the ID class prediction for accuracy (MOS's group rule, PASCL's
  branch B);
* ``on_train_end(model, context)``: after the last stage (PATT's calibration vector);
* ``state_dict()`` / ``load_state_dict(state)``: recipe state saved in every checkpoint
  (PATT's running class means, NPOS's queues), as tensors and plain types (checkpoints are
  read with ``weights_only=True``). Draw randomness from torch's global generator (saved
  in checkpoints and restored on resume), so resumes stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from oodlab.config import RunConfig, TrainConfig, from_dict
from oodlab.registry import Registry
from oodlab.types import linear_head

METHODS: Registry[Any] = Registry("method")
register_method = METHODS.register


@dataclass(frozen=True)
class Stage:
    """One training stage: its optimisation settings and batch composition.

    Attributes:
        name: shown in logs and given to the recipe's hooks (``batch.stage``).
        train: optimiser, schedule and epochs of the stage.
        views: ID views per image; ``uses_aux``: draw auxiliary outliers.
        batch_size, aux_batch_size: override ``data.batch_size`` / ``data.aux_batch_size``.
        transform, aux_transform: per-item training transforms of the ID and auxiliary sets
            (a preset name of :data:`oodlab.data.TRANSFORM_PRESETS` such as ``"patt_views"``,
            or a callable on uint8 ``(C, H, W)`` images). ``None``: the benchmark's own — for
            in-memory sets, batch augmentation on the device (``data.crop_padding``, ...).
    """

    name: str
    train: TrainConfig
    views: int = 1
    uses_aux: bool = False
    batch_size: int | None = None
    aux_batch_size: int | None = None
    transform: str | Callable[..., Any] | None = None
    aux_transform: str | Callable[..., Any] | None = None


@dataclass
class Batch:
    """One training step's data on the training device, and where the step stands.

    Attributes:
        views: ID views ``(B, C, H, W)`` of the same images (independently augmented).
        y: ``(B,)`` labels.
        x_aux: ``(B_aux, C, H, W)`` auxiliary outliers, or ``None``.
        model: the unwrapped model (not DDP), for passes outside the main forward.
        stage: the stage's name; ``epoch``: epoch within the stage; ``step``: steps taken in it.
    """

    views: list[Tensor]
    y: Tensor
    x_aux: Tensor | None = None
    model: nn.Module | None = None
    stage: str = "main"
    epoch: int = 0
    step: int = 0

    @property
    def x(self) -> Tensor:
        return self.views[0]


@dataclass
class TrainContext:
    """What ``on_train_end`` receives: the trained model's surroundings."""

    config: RunConfig
    benchmark: Any
    device: torch.device
    run_dir: Path
    is_main: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


FeatureFn = Callable[[nn.Module, Tensor], Mapping[str, Tensor]]


class TrainView(nn.Module):
    """The module the loop wraps in DDP: ``forward(x)`` runs features, classifier, requested
    extra heads and ``fn`` in one call, so every gradient goes through DDP's hooks."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: Tensor, heads: Sequence[str] = (), fn: FeatureFn | None = None
    ) -> dict[str, Tensor]:
        z = self.model.features(x)  # type: ignore[operator]
        out = {"features": z, "logits": self.model.head(z)}  # type: ignore[operator]
        if heads:
            out.update(self.model.extra_outputs(z, heads))  # type: ignore[operator]
        if fn is not None:
            out.update(fn(self.model, z))
        return out


@dataclass
class Forward:
    """Outputs of one forward over concatenated parts; ``parts(key)`` splits them back."""

    outputs: dict[str, Tensor]
    sizes: list[int]

    def __getitem__(self, key: str) -> Tensor:
        return self.outputs[key]

    def parts(self, key: str = "logits") -> list[Tensor]:
        return list(self.outputs[key].split(self.sizes))


def forward_concat(
    net: nn.Module, parts: Sequence[Tensor], heads: Sequence[str] = (), fn: FeatureFn | None = None
) -> Forward:
    """One forward pass of ``net`` (a possibly DDP-wrapped :class:`TrainView`) over the
    concatenation of ``parts`` (ID views, outliers), so BatchNorm sees them together."""
    x = parts[0] if len(parts) == 1 else torch.cat(list(parts))
    return Forward(net(x, heads, fn), [len(p) for p in parts])


class Recipe:
    """Base recipe: one stage, one view, no outliers, no extra heads, no state.

    Subclasses implement :meth:`loss` and override what their method needs (module docstring).
    """

    views: int = 1
    uses_aux: bool = False
    heads: Mapping[str, Mapping[str, Any]] = {}
    classifier: Mapping[str, Any] | None = None
    zscore_sigma: float | None = None
    #: DDP must look for parameters a step leaves unused (e.g. heads used on some steps only).
    find_unused_parameters: bool = False

    def __init__(self, options: Any, class_counts: Sequence[int]) -> None:
        self.options = options
        self.class_counts = list(class_counts)

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    @property
    def prior(self) -> Tensor:
        """The class prior ``π`` of the long-tailed training counts, float64 ``(C,)``."""
        counts = torch.tensor(self.class_counts, dtype=torch.float64)
        return counts / counts.sum()

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    @property
    def logit_adjustment(self) -> float:
        """``τ`` of the ``CE(f + τ log π, y)`` that trained the logits the scores read (0: none).

        The ImOOD ``ada_*`` scores correct only the residual prior ``1 − τ``
        (:mod:`oodlab.scores.imood_prior`). Default: the method's ``options.tau``, if any.
        """
        tau = getattr(self.options, "tau", 0.0)
        return float(tau) if isinstance(tau, int | float) and not isinstance(tau, bool) else 0.0

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model

    def stages(self, config: RunConfig) -> list[Stage]:
        return [Stage("main", config.train, self.views, self.uses_aux)]

    def on_stage_start(self, stage: Stage, model: nn.Module) -> None:
        """Before the stage's optimiser is built (and, on resume, before weights are restored)."""

    def train_mode(self, model: nn.Module, stage: Stage) -> None:
        model.train()

    def param_groups(self, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
        """Trainable parameters in groups; the linear classifier at ``lr · head_lr_factor``."""
        head = linear_head(model)
        head_params = [p for p in head.parameters() if p.requires_grad] if head else []
        head_ids = {id(p) for p in head_params}
        body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
        groups = [{"name": "body", "params": body, "lr": config.lr}]
        if head_params:
            groups.append(
                {"name": "head", "params": head_params, "lr": config.lr * config.head_lr_factor}
            )
        return [g for g in groups if g["params"]]

    def on_epoch_start(self, epoch: int, stage: Stage) -> None:
        """Before each epoch (0-based, within the stage)."""

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The step's loss and its logged terms (detached scalars)."""
        raise NotImplementedError

    def after_step(self, batch: Batch) -> None:
        """After each optimiser step."""

    @torch.no_grad()
    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Predicted ID classes ``(N,)`` (for the accuracy the loop reports)."""
        return model(x).argmax(1)

    def on_train_end(self, model: nn.Module, context: TrainContext) -> None:
        """Once after the last stage, before the final model is saved (every process)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def build_recipe(name: str, options: Mapping[str, Any], class_counts: Sequence[int]) -> Recipe:
    """The recipe ``name`` with ``options`` validated against its config dataclass."""
    entry = METHODS.get(name)
    config = (
        from_dict(entry.config_type, options, where=f"method.options ({name})")
        if entry.config_type
        else None
    )
    recipe: Recipe = entry.factory(config, class_counts)
    return recipe


__all__ = [
    "METHODS",
    "Batch",
    "Forward",
    "Recipe",
    "Stage",
    "TrainContext",
    "TrainView",
    "build_recipe",
    "forward_concat",
    "register_method",
]
