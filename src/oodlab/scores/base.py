"""The post-hoc score contract (scikit-learn's estimator shape, pytorch-ood's feature path).

Every score:

* is a pure module-level function on tensors plus a thin class deriving from :class:`Score`;
* takes only hyper-parameters in its constructor, stored under the same names;
  invalid values raise at once;
* has ``fit(train, aux=None) -> self`` (a no-op for stateless scores) that stores
  fitted state in trailing-underscore attributes;
* has ``score(outputs) -> Tensor (N,)``, **higher = more OOD**, on cached model
  outputs, so one forward pass feeds every score.

Scores that must run the network again (input perturbation, input gradients)
derive from :class:`InputGradientScore`, declare ``"model"`` and ``"input_grad"``
in their registry entry, and implement ``score_inputs(model, x)`` instead.

``search_space`` lists the hyper-parameter grid used when a score is tuned on a
validation split (OpenOOD's APS grids where they exist).

``state_dict()`` / ``load_state_dict(state)`` export and restore the fitted state as plain
tensors and scalars (:mod:`oodlab.scores._state`), so a fitted score is saved without pickle;
attributes rebuilt from the others (a faiss index) are named in ``derived_state`` and
recreated by ``rebuild_state()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.registry import Registry
from oodlab.scores._state import StateValue, flatten_state, unflatten_state
from oodlab.types import HEAD_INPUT, Outputs

S = TypeVar("S", bound="Score")

SCORES: Registry[Score] = Registry("score")
register_score = SCORES.register


class Score:
    """Base class of every post-hoc OOD score; ``score`` returns higher = more OOD."""

    search_space: ClassVar[dict[str, Sequence[Any]]] = {}
    derived_state: ClassVar[tuple[str, ...]] = ()

    def fit(self: S, train: Outputs, *, aux: Outputs | None = None) -> S:
        """Learn what the score needs from training-set outputs (no-op by default)."""
        return self

    def score(self, outputs: Outputs) -> Tensor:
        """Per-sample OOD score ``(N,)``, higher = more OOD."""
        raise NotImplementedError

    def grid(self, train: Outputs | None) -> dict[str, Sequence[Any]]:
        """The grid tuning searches for this model: ``search_space``, unless a score adapts
        it to the training outputs (ViM: to the feature dimension)."""
        return dict(self.search_space)

    def note(self) -> str | None:
        """One line for the results stating a choice the score made (e.g. ImOOD's ``τ_LA``)."""
        return None

    # -- fitted state as tensors ------------------------------------------------------
    def state_dict(self) -> dict[str, StateValue]:
        """The fitted state (trailing-underscore attributes) as plain tensors and scalars."""
        return flatten_state(self)

    def load_state_dict(self: S, state: Mapping[str, StateValue]) -> S:
        """Restore the fitted state of :meth:`state_dict`, then :meth:`rebuild_state`."""
        for name, value in unflatten_state(state).items():
            setattr(self, name, value)
        self.rebuild_state()
        return self

    def rebuild_state(self) -> None:
        """Recreate the ``derived_state`` attributes after loading (nothing by default)."""

    # -- hyper-parameters -------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def with_params(self: S, **params: Any) -> S:
        """A new, unfitted score of the same kind with some hyper-parameters replaced."""
        unknown = sorted(set(params) - set(self.param_names()))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} has no hyper-parameter {unknown[0]!r}; "
                f"valid: {', '.join(self.param_names()) or 'none'}"
            )
        return type(self)(**{**self.get_params(), **params})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if _short(v))
        return f"{type(self).__name__}({params})"

    # -- helpers for subclasses -----------------------------------------------------
    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, name, None) is None for name in attributes):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted; call .fit(train_outputs) before .score()"
            )


class InputGradientScore(Score):
    """A score that re-runs the network on (perturbed) inputs; it cannot use cached outputs."""

    def score(self, outputs: Outputs) -> Tensor:
        raise DataError(
            f"{type(self).__name__} needs the model and the inputs (input gradients); "
            "call .score_inputs(model, x), or let oodlab.evaluate run it"
        )

    def score_inputs(self, model: nn.Module, x: Tensor) -> Tensor:
        """Per-sample OOD score ``(N,)`` for the input batch ``x``, higher = more OOD."""
        raise NotImplementedError


def score_name(score: Score) -> str:
    """The registry name of ``score``'s class (its lower-cased class name if unregistered)."""
    for entry in SCORES:
        if entry.factory is type(score):
            return entry.name
    return type(score).__name__.lower()


def require_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is > 0 (or >= 0 with ``allow_zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if allow_zero else value > 0)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a number {bound}, got {value!r}")


def require_in_range(name: str, value: float, low: float, high: float) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")


def require_extra(outputs: Outputs, key: str, score_name: str) -> Tensor:
    """The extra head output ``key``; a model without it raises one line."""
    if key not in outputs.extras:
        raise DataError(
            f"score {score_name!r} needs the model's {key!r} output, which these outputs lack "
            f"(have: {sorted(outputs.extras) or 'none'}); train with a method that adds that head"
        )
    return outputs.extras[key]


def require_head(outputs: Outputs, score_name: str) -> tuple[Tensor, Tensor]:
    """The linear head ``(W, b)``; a model without one raises one line."""
    if outputs.head_weight is None:
        raise DataError(
            f"score {score_name!r} needs the linear head (W, b) of the model; give the model an "
            "nn.Linear `head` or a `linear_head()` method"
        )
    bias = outputs.head_bias
    if bias is None:
        weight = outputs.head_weight
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return outputs.head_weight, bias


def head_features(outputs: Outputs) -> Tensor:
    """The classifier's input ``(N, D)``: ``extras["head_input"]`` if cached, else ``features``.

    The scores that rebuild logits as ``W·x + b`` from cached outputs — ReAct, ASH, ViM,
    GradNorm, ``ada_gradnorm``, PATT calibration, and MCM when it borrows the rows of ``W`` as
    class embeddings — take ``x`` from here; for most models it is the penultimate feature
    ``h``. ASCOOD's classifier reads ``z = σ·(h − mean h)/(std h + 1e-6)`` (per sample;
    synthesis_and_mos.md §1.2): ``features`` stays the raw ``h``, as in OpenOOD, and ``z`` is
    cached as ``head_input`` (:meth:`oodlab.models.heads.WithHeads.head_input`).

    Decision (§1.10 pitfall 9): scores that use the classifier work on **its input**, so that
    unmodified, ``W·x + b`` is the model's own logits. Then GradNorm's closed form
    ``(C·p − 1)·xᵀ`` is exactly the gradient of the loss w.r.t. the fc weight; ViM's origin
    ``u = −W⁺b`` is a point of this space, so its principal subspace and residual are taken
    here too (the z-score is not affine in ``h``, so ``u`` has no counterpart among raw
    features and ``h − u`` would mix two spaces); ReAct and ASH clip or shape the activations
    the classifier sees; PATT weighs them against the rows of ``W``. Feature-space scores (KNN,
    Mahalanobis, the extra heads) keep the raw ``h``. OpenOOD's ReAct/ASH/SCALE wrappers
    instead feed ``fc(modified h)``, bypassing the z-score the fc was trained on; oodlab does
    not reproduce that.

    Consequence for ASH: ``z`` has zero mean per sample, so ASH-B's kept value ``s1/k`` is 0
    (all logits equal ``b``: a constant score) and ASH-S's factor ``exp(s1/s2)`` is 1 (it
    becomes ASH-P). Re-applying the z-score after shaping ``h`` would not help: the z-score is
    scale-invariant and cancels ASH's rescaling just the same.
    """
    return outputs.extras.get(HEAD_INPUT, outputs.features)


def _short(value: Any) -> bool:
    return not isinstance(value, Tensor) or value.numel() <= 8
