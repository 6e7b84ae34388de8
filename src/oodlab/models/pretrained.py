"""Pretrained initialisation of a backbone from a local file (``model.weights``).

Nothing is downloaded: the file is a torchvision ``.pth`` state dict (ResNet-18 / ResNet-50;
their names are oodlab's :class:`~oodlab.models.torchvision_resnet.TorchvisionResNet` names) or
an official BiT ``.npz`` (:mod:`oodlab.models.bit`). As in ASCOOD (synthesis_and_mos.md §1.2),
a classifier of another shape (another class count) is dropped and keeps its fresh
initialisation; any other difference between file and model raises one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from oodlab.errors import CheckpointError
from oodlab.io import safe_torch_load
from oodlab.models.bit import bit_npz_to_state_dict

#: Model name → (the file its published configs expect, where to obtain it).
SOURCES: dict[str, tuple[str, str]] = {
    "resnet18": (
        "torchvision's resnet18-f37072fd.pth (ResNet18_Weights.IMAGENET1K_V1)",
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ),
    "resnet50": (
        "torchvision's resnet50-0676ba61.pth (ResNet50_Weights.IMAGENET1K_V1)",
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    ),
    "bit_s_r101x1": (
        "BiT-S-R101x1.npz (Big Transfer, ImageNet-1k)",
        "https://storage.googleapis.com/bit_models/BiT-S-R101x1.npz",
    ),
}


def read_weights(path: Path) -> dict[str, Tensor]:
    """A state dict from a ``.npz`` (BiT) or a ``torch.save`` file (bare, or under
    ``"state_dict"`` / ``"model"``), without a ``module.`` prefix."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return bit_npz_to_state_dict(arrays)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {path} as an .npz of arrays: {exc}") from None
    obj = safe_torch_load(path)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in obj.items() if isinstance(v, Tensor)}


def state_dict_mismatch(
    own: Mapping[str, Tensor], state: Mapping[str, Tensor], not_needed: Set[str] = frozenset()
) -> str:
    """What keeps ``state`` from loading into a model whose state dict is ``own``: its tensors
    missing (but those ``not_needed``), unexpected and of another shape, each counted with its
    first three names; ``""`` when it fits."""
    missing = sorted(set(own) - set(state) - set(not_needed))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    return "; ".join(
        f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for keys, what in (
            (missing, "missing"),
            (unexpected, "unexpected"),
            (reshaped, "of another shape"),
        )
        if keys
    )


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's final linear layer (``linear_head()``), if it has one."""
    getter = getattr(model, "linear_head", None)
    layer = getter() if callable(getter) else None
    for name, module in model.named_modules():
        if module is layer and name:
            return {f"{name}.weight", f"{name}.bias"}
    return set()


def load_pretrained(model: nn.Module, path: str | Path, name: str) -> list[str]:
    """Load the pretrained weights at ``path`` into the backbone ``model`` (registry ``name``).

    Returns:
        The classifier keys left freshly initialised (shape differs, or absent from the file).

    Raises:
        CheckpointError: the file is missing (the message says where to obtain it), unreadable,
            or has tensors missing, unexpected or of another shape outside the classifier.
    """
    path = Path(path).expanduser()
    expected, url = SOURCES.get(name, (f"a state dict of oodlab's {name!r} model", ""))
    if not path.is_file():
        where = f"download it from {url}" if url else "save one with torch.save(state_dict)"
        raise CheckpointError(
            f"model.weights {path} does not exist: expected {expected}; {where} (oodlab "
            "downloads nothing), or set model.weights: null to train from scratch"
        )
    state = read_weights(path)
    own = model.state_dict()
    head = classifier_keys(model)
    fits = all(k in state and state[k].shape == own[k].shape for k in head)
    fresh = [] if fits else sorted(head)
    state = {k: v for k, v in state.items() if k not in fresh}
    batch_counters = {k for k in own if k.endswith("num_batches_tracked")}
    problem = state_dict_mismatch(own, state, not_needed=set(fresh) | batch_counters)
    if problem:
        raise CheckpointError(
            f"model.weights {path} does not fit model {name!r}: tensors {problem}; "
            f"expected {expected}"
        )
    model.load_state_dict(state, strict=False)
    return fresh
