"""The input normalisation a model applies inside itself: read it, name it, attach it.

oodlab feeds every model images in ``[0, 1]``; a model that was trained on normalised inputs
``(x − mean) / std`` carries ``mean`` and ``std`` as buffers (:class:`~oodlab.models.heads.
WithHeads`), so training, evaluation and the input-gradient scores agree. The public contract
is :func:`input_normalization`: the per-channel ``(mean, std)`` a model applies, or ``None``
when it applies none (or does not say). ODIN / i-ODIN do *not* divide their step by it: they
perturb the ``[0, 1]`` pixels the model receives, which is what OpenOOD's division of a step on
normalised inputs by ``σ_ch`` amounts to (:func:`oodlab.scores.odin.odin`, "Units of ε").

A model may declare its own by defining ``input_normalization() -> (mean, std) | None``;
otherwise tensor ``mean`` / ``std`` attributes (buffers) are read, and wrappers that hold one
model (``ood`` branch of :class:`~oodlab.models.two_branch.TwoBranch`) are looked through.

:data:`NORMALIZATIONS` names the statistics the papers' code uses (``--normalize NAME``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oodlab.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR10_STD_PATT,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from oodlab.errors import ConfigError

Stats = tuple[tuple[float, ...], tuple[float, ...]]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Named input normalisations (mean, std); ``none`` is the identity (inputs stay in [0, 1]).
NORMALIZATIONS: dict[str, Stats | None] = {
    "none": None,
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar10_patt": (CIFAR10_MEAN, CIFAR10_STD_PATT),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "bit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # BiT / MOS: inputs in [-1, 1]
    "clip": (CLIP_MEAN, CLIP_STD),
}


def input_normalization(model: nn.Module) -> tuple[Tensor, Tensor] | None:
    """The per-channel ``(mean, std)`` (each ``(C,)``) that ``model`` applies to its inputs.

    Returns ``None`` when the model applies no normalisation, or carries none that oodlab can
    read (a bare backbone). Callers that must know (``oodlab eval --checkpoint``) decide the
    normalisation before building the model; see :func:`attach_normalization`.
    """
    own = getattr(model, "input_normalization", None)
    if callable(own):
        found = own()
        if found is None:
            return None
        mean, std = found
        return _flat(mean), _flat(std)
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    if isinstance(mean, Tensor) and isinstance(std, Tensor):
        return _flat(mean), _flat(std)
    inner = getattr(model, "ood", None)  # TwoBranch: both branches share the input
    if isinstance(inner, nn.Module):
        return input_normalization(inner)
    return None


def _flat(values: Tensor | Sequence[float]) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32).detach().reshape(-1).cpu()


def input_std(model: nn.Module) -> tuple[float, ...] | None:
    """The std of :func:`input_normalization` as a tuple (ODIN's ``input_std``), or ``None``."""
    found = input_normalization(model)
    return None if found is None else tuple(float(s) for s in found[1])


def parse_normalize(text: str) -> Stats | None:
    """``--normalize``: a name of :data:`NORMALIZATIONS`, or ``MEAN,STD`` (one value each, for
    every channel), or ``M1,M2,M3/S1,S2,S3``; ``None`` for ``none``."""
    spec = text.strip().lower()
    if spec in NORMALIZATIONS:
        return NORMALIZATIONS[spec]
    hint = (
        f"--normalize {text!r} is not a name ({', '.join(NORMALIZATIONS)}), 'MEAN,STD' "
        "(e.g. 0.5,0.5) nor 'M1,M2,M3/S1,S2,S3' (e.g. 0.485,0.456,0.406/0.229,0.224,0.225)"
    )
    try:
        if "/" in spec:
            left, _, right = spec.partition("/")
            mean = tuple(float(v) for v in left.split(","))
            std = tuple(float(v) for v in right.split(","))
        else:
            values = [float(v) for v in spec.split(",")]
            if len(values) != 2:
                raise ValueError
            mean, std = (values[0],), (values[1],)
    except ValueError:
        raise ConfigError(hint) from None
    return validate_stats(mean, std, "--normalize")


def validate_stats(mean: Sequence[float], std: Sequence[float], what: str) -> Stats:
    """``(mean, std)`` as float tuples of one length with ``std > 0``; else one-line error."""
    try:
        m, s = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: mean and std must be lists of numbers") from None
    if not m or len(m) != len(s):
        raise ConfigError(f"{what}: mean and std need the same number of values, got {m} / {s}")
    if any(not v > 0 or v == float("inf") for v in s):
        raise ConfigError(f"{what}: std must be positive and finite, got {s}")
    return m, s


def broadcast_stats(stats: Stats, channels: int) -> Stats:
    """One value per channel: a single ``MEAN,STD`` is repeated ``channels`` times."""
    mean, std = stats
    if len(mean) == 1 and channels > 1:
        return mean * channels, std * channels
    if len(mean) != channels:
        raise ConfigError(
            f"the normalisation has {len(mean)} values per statistic but the model reads "
            f"{channels}-channel images; give {channels} means and {channels} stds"
        )
    return mean, std


def attach_normalization(model: nn.Module, stats: Stats | None, channels: int) -> nn.Module:
    """``model`` applying ``(x − mean) / std`` first (a :class:`WithHeads`), or unchanged for
    ``None``. A ``WithHeads`` without normalisation gets the buffers set in place."""
    from oodlab.models.heads import WithHeads

    if stats is None:
        return model
    mean, std = broadcast_stats(stats, channels)
    shape = (1, -1, 1, 1)
    if isinstance(model, WithHeads):
        if model.mean is not None:
            raise ConfigError("the model already normalises its inputs; give the statistics once")
        model.mean = torch.tensor(mean).view(shape)
        model.std = torch.tensor(std).view(shape)
        return model
    return WithHeads(model, mean=mean, std=std)
