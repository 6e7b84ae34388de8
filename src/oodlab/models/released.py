"""Load the released checkpoints of PASCL, ImOOD and PATT into oodlab's models.

Their state dicts (long_tailed.md §1.2, §2.3, §3.2) use:

* a ``module.`` prefix when saved from ``nn.DataParallel`` / DDP;
* the backbone's own names: kuangliu's CIFAR ResNet (``conv1, bn1, layer{i}.{j}.conv1 / bn1 /
  conv2 / bn2 / shortcut.0 / shortcut.1, linear``) or torchvision's ResNet-50 (``... fc``,
  ``downsample.0/1``) — the names of :class:`~oodlab.models.resnet_cifar.ResNetCIFAR` and
  :class:`~oodlab.models.torchvision_resnet.TorchvisionResNet`;
* extra heads beside the classifier: PASCL / ImOOD ``projection.{0,2}`` (MLP), ImOOD
  ``lambda_linear`` (the γ head, d→C) and ``aux_linear`` (ImOOD: Linear(1, 1); PASCL: an unused
  d→C layer), PATT's ImageNet ``head.{0,1,3}``, and PATT's ``finalScore`` buffer (the
  calibration vector ``a``).

In oodlab a model with extra heads is a :class:`~oodlab.models.heads.WithHeads` whose keys are
``backbone.<backbone key>`` and ``extra_heads.<name>.<head key>``; the head names below map the
released names onto oodlab's. Tensors without a place in the model (heads it lacks,
``finalScore``) are returned, so a caller can use them (e.g. PATT's calibration vector).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from oodlab.errors import CheckpointError
from oodlab.models.heads import WithHeads

#: Released head name → oodlab extra-head name.
RELEASED_HEADS: dict[str, str] = {
    "projection": "projection",
    "lambda_linear": "gamma",
    "aux_linear": "aux_linear",
    "head": "contrast",
}


def released_to_oodlab(key: str, with_heads: bool) -> str:
    """oodlab's name for the released state-dict key ``key``."""
    key = key.removeprefix("module.")
    top, _, rest = key.partition(".")
    if rest and top in RELEASED_HEADS:
        return f"extra_heads.{RELEASED_HEADS[top]}.{rest}"
    return f"backbone.{key}" if with_heads else key


def load_released_state_dict(
    model: nn.Module, state: Mapping[str, Tensor], strict: bool = True
) -> dict[str, Tensor]:
    """Load a PASCL / ImOOD / PATT state dict into ``model``; return the tensors left over.

    Args:
        model: a backbone of :data:`~oodlab.models.MODELS`, or one with heads (``WithHeads``).
        state: the released state dict (e.g. ``torch.load(path, weights_only=True)["model"]``).
        strict: every tensor of ``model`` must come from ``state`` (BatchNorm's
            ``num_batches_tracked`` excepted, which old checkpoints lack).

    Returns:
        The released tensors with no place of that name and shape in ``model``, by their
        released names without ``module.`` (e.g. ``{"finalScore": a}``).

    Raises:
        CheckpointError: in strict mode, when some model tensors are missing or have another
            shape (a checkpoint of another architecture or class count).
    """
    own = model.state_dict()
    with_heads = isinstance(model, WithHeads)
    loadable: dict[str, Tensor] = {}
    unused: dict[str, Tensor] = {}
    for key, value in state.items():
        target = released_to_oodlab(key, with_heads)
        if target in own and own[target].shape == value.shape:
            loadable[target] = value
        else:
            unused[key.removeprefix("module.")] = value
    missing = sorted(k for k in set(own) - set(loadable) if not k.endswith("num_batches_tracked"))
    if strict and missing:
        raise CheckpointError(
            f"the checkpoint does not fit {type(model).__name__}: {len(missing)} tensors are "
            f"missing or have another shape, e.g. {missing[:3]} (leftover keys: "
            f"{sorted(unused)[:3]}); check the model name, num_classes and heads"
        )
    model.load_state_dict(loadable, strict=False)
    return unused
