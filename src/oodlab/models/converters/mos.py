"""MOS's BiT fine-tunes (``deeplearning-wisc/large_scale_ood``: ``resnetv2.py``, ``finetune.py``).

The checkpoint ``bit.pth.tar`` is ``{"step", "model", "optim"}``; ``model`` is the state dict
of a ``nn.DataParallel``-wrapped BiT ``ResNetV2``: ``module.root.conv.weight``,
``module.body.block{1-4}.unit{01..}.{gn1,conv1,gn2,conv2,gn3,conv3,downsample}``,
``module.before_head.gn.*`` and a 1×1-conv head ``module.head.conv.weight`` of shape
``(outputs, 2048, 1, 1)`` with its bias. The group-softmax fine-tune has
``1000 + 8 = 1008`` outputs (the 8-group taxonomy, "others" first in each group); the
flat-softmax fine-tune has 1000. Inputs are normalised to [-1, 1] (mean = std = 0.5,
synthesis_and_mos.md §3.5).

oodlab: :class:`~oodlab.models.bit.BiTResNetV2` (``root``, ``block{i}.{unit−1}``, ``norm``,
``fc``); the 1×1 conv becomes the ``(outputs, 2048)`` weight of a linear head, which for the
group fine-tune is a :class:`~oodlab.models.heads.GroupSoftmaxHead`. Its group sizes and
class order come from the format option ``groups`` (``--model-set groups=FILE``: the
official ``imagenet2012_group_softmax_*_list.txt`` or any grouping file of
:func:`oodlab.data.groupings.load_grouping`); they are stored as ``group_class_ids`` so that
ID accuracy maps MOS predictions back to class ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from oodlab.errors import CheckpointError, ConfigError
from oodlab.models.converters.base import Converted, key_matcher, register_format, strip

_UNIT = re.compile(r"body\.block([1-4])\.unit(\d+)\.(.+)")
_UNIT_LEAF = r"(gn[123]\.(weight|bias)|conv[123]\.weight|downsample\.weight)"
_BLOCKS: dict[tuple[int, ...], str] = {(3, 4, 23, 3): "bit_s_r101x1"}


def bit_pytorch_key(key: str) -> str:
    """oodlab's name for a BiT PyTorch (``ResNetV2``) key."""
    if key == "root.conv.weight":
        return "root.weight"
    if key.startswith("before_head.gn."):
        return "norm." + key.removeprefix("before_head.gn.")
    if key.startswith("head.conv."):
        return "fc." + key.removeprefix("head.conv.")
    match = _UNIT.fullmatch(key)
    if match:
        block, unit, leaf = match.groups()
        return f"block{block}.{int(unit) - 1}.{leaf}"
    return key


@register_format(
    "mos_bit",
    paper="Huang & Li (MOS), CVPR 2021, arXiv:2105.01879; BiT, arXiv:1912.11370",
    matches=key_matcher(
        r"root\.conv\.weight",
        rf"body\.block[1-4]\.unit\d+\.{_UNIT_LEAF}",
        r"before_head\.gn\.(weight|bias)",
        r"head\.conv\.(weight|bias)",
    ),
    layout="module.root.conv, module.body.blockN.unitNN.*, module.before_head.gn, "
    "module.head.conv (1x1 conv)",
)
def mos_bit(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """A MOS group-softmax or flat-softmax BiT fine-tune (option ``groups`` for the former)."""
    from oodlab.data.groupings import load_grouping

    renamed = {bit_pytorch_key(strip(k)): v for k, v in state.items()}
    blocks = [0, 0, 0, 0]
    for key in renamed:
        found = re.fullmatch(r"block([1-4])\.(\d+)\..+", key)
        if found:
            i, j = int(found.group(1)) - 1, int(found.group(2))
            blocks[i] = max(blocks[i], j + 1)
    name = _BLOCKS.get(tuple(blocks))
    if name is None:
        raise CheckpointError(
            f"a BiT ResNet-v2 with {blocks} units per block is not an oodlab model (known: "
            "BiT-S-R101x1, [3, 4, 23, 3])"
        )
    weight = renamed["fc.weight"]
    if weight.ndim == 4:
        renamed["fc.weight"] = weight.flatten(1)
    outputs = int(renamed["fc.weight"].shape[0])
    groups = options.pop("groups", None)
    if groups is None:
        if outputs in (1008,):
            raise ConfigError(
                f"this MOS checkpoint has {outputs} group-softmax outputs; give its grouping "
                "with --model-set groups=FILE (MOS's imagenet2012_group_softmax_val_list.txt)"
            )
        return Converted(name, outputs, renamed, normalization="bit")
    grouping = load_grouping(groups)
    sizes = grouping.group_sizes
    if sum(sizes) != outputs:
        raise ConfigError(
            f"the grouping {groups} gives {sum(sizes)} group-softmax outputs ({sizes}) but the "
            f"checkpoint's head has {outputs}"
        )
    head = {f"classifier.{p}": renamed.pop(f"fc.{p}") for p in ("weight", "bias")}
    state_out = {f"backbone.{k}": v for k, v in renamed.items()}
    return Converted(
        name, grouping.num_classes, state_out | head,
        classifier={"kind": "group_softmax", "group_sizes": sizes},
        buffers={"group_class_ids": torch.tensor(grouping.class_order, dtype=torch.long)},
        from_model=["backbone.fc.weight", "backbone.fc.bias"],  # replaced by the group head
        normalization="bit", scores=["mos", "msp", "energy"],
        notes=[f"MOS groups: {len(sizes)} ({', '.join(map(str, sizes))} logits)"],
    )  # fmt: skip
