"""Where evaluation keeps the cached outputs: on the evaluation device, so scores run there.

:func:`~oodlab.eval.evaluate.evaluate` moves every dataset's outputs to
``ExtractConfig.device`` once, after extraction; every cached-output score then fits and scores
on that device (each score computes on the device of its inputs; KNN searches with faiss-GPU
when it is installed, else with its torch backend there). On the CPU the memory-mapped cache
arrays are kept as they are, so the CPU path is unchanged and a streaming fit keeps one chunk
resident. Scores come back to the host only for the metrics.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from oodlab.scores._stream import row_chunks
from oodlab.types import Outputs


def tensor_on(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` on ``device``; from the CPU in row chunks (a memory-mapped array's pages are
    released chunk by chunk, so host memory holds one chunk, not the whole file)."""
    if tensor.device == device or device.type == "cpu":
        return tensor.to(device)
    out = torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
    start = 0
    for block in row_chunks(tensor):
        out[start : start + len(block)].copy_(block)
        start += len(block)
    return out


def outputs_on(outputs: Outputs, device: torch.device) -> Outputs:
    """Every tensor of ``outputs`` on ``device`` (the same object on the CPU: nothing moves)."""
    if device.type == "cpu" and outputs.logits.device.type == "cpu":
        return outputs

    def move(value: Tensor | None) -> Tensor | None:
        return None if value is None else tensor_on(value, device)

    return dataclasses.replace(
        outputs,
        logits=tensor_on(outputs.logits, device),
        features=tensor_on(outputs.features, device),
        labels=tensor_on(outputs.labels, device),
        extras={k: tensor_on(v, device) for k, v in outputs.extras.items()},
        head_weight=move(outputs.head_weight),
        head_bias=move(outputs.head_bias),
    )
