"""Every cached-output score gives the same values with its outputs on a device as on the CPU.

The device is each one available: the CPU always (where this checks that moving the outputs
changes nothing), and a CUDA device when there is one (``gpu``-marked; the GPU check runs it).
The CPU result is the in-memory reference, computed once per score.
"""

from __future__ import annotations

import pytest
import torch

from oodlab.errors import DataError
from oodlab.scores import SCORES, InputGradientScore

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]
NAMES = [e.name for e in SCORES if "input_grad" not in e.needs]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_scores_on_the_device_equal_the_cpu_scores(toy, name, device):
    score = SCORES.create(name)
    if isinstance(score, InputGradientScore):
        pytest.skip("re-runs the network")
    try:
        reference = score.fit(toy.train, aux=toy.aux).score(toy.ood)
    except DataError as exc:  # a score that needs extras the toy model lacks (bin_logit, groups)
        pytest.skip(str(exc))
    moved = SCORES.create(name).fit(toy.train.to(device), aux=toy.aux.to(device))
    values = moved.score(toy.ood.to(device))
    assert values.device.type == torch.device(device).type
    torch.testing.assert_close(values.cpu().double(), reference.double(), rtol=1e-5, atol=1e-5)
