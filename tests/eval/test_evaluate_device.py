"""``evaluate`` moves the cached outputs to its device once, and every score runs there.

On the CPU the outputs stay as they are (memory-mapped), so ``device="cpu"`` and the default
(``"auto"``, the CPU on a machine without CUDA) give identical per-sample scores; with a CUDA
device (``gpu``-marked) every score gets its outputs on the GPU and the scores equal the CPU
ones up to float round-off.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from oodlab.eval.bootstrap import BootstrapConfig
from oodlab.eval.cli import zoo_scores
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig
from oodlab.eval.placement import outputs_on
from oodlab.scores.energy import Energy
from oodlab.types import Outputs

CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ],
)


class _Spy(Energy):
    """The energy score, recording the device of every output it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def score(self, outputs: Outputs) -> Tensor:
        self.seen.append(outputs.features.device.type)
        return super().score(outputs)


def _run(toy, tmp_path, device: str, scores):
    ood = {"far": TensorDataset(toy.x_ood, torch.full((len(toy.x_ood),), -1))}
    config = ExtractConfig(batch_size=32, device=device, cache_dir=tmp_path / "cache", quiet=True)
    return evaluate(
        toy.model,
        TensorDataset(toy.x_id, toy.y_id),
        ood,
        scores,
        train=TensorDataset(toy.x_train, toy.y_train),
        aux=TensorDataset(toy.x_ood[:30], torch.full((30,), -1)),
        class_counts=[50, 50, 50, 50],
        extract_config=config,
        skip_unavailable=True,
        bootstrap=BootstrapConfig(samples=0),
        plots=False,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="the default device is CUDA here")
def test_cpu_device_and_default_give_identical_scores(toy, tmp_path):
    default = _run(toy, tmp_path / "a", "auto", zoo_scores())
    cpu = _run(toy, tmp_path / "b", "cpu", zoo_scores())
    assert sorted(cpu.raw) == sorted(default.raw)
    assert len(cpu.raw) >= 15
    for name, sets in cpu.raw.items():
        for key, values in sets.items():
            np.testing.assert_array_equal(values, default.raw[name][key], err_msg=name)
    assert cpu.id_accuracy == default.id_accuracy


def test_cpu_outputs_are_kept_as_they_are(toy):
    assert outputs_on(toy.train, torch.device("cpu")) is toy.train


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_scores_get_their_outputs_on_the_device(toy, tmp_path, device):
    spy = _Spy()
    result = _run(toy, tmp_path, device, [spy])
    assert spy.seen == [torch.device(device).type] * 2  # the ID test set, then the OOD set
    # The values themselves: the energy of the toy logits, computed here by hand.
    with torch.no_grad():
        logits = toy.model(toy.x_ood)
    expected = -torch.logsumexp(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(result.raw["_spy"]["far"], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_equal_the_cpu_scores(toy, tmp_path):
    cuda = _run(toy, tmp_path / "cuda", "cuda", zoo_scores())
    cpu = _run(toy, tmp_path / "cpu", "cpu", zoo_scores())
    assert sorted(cuda.raw) == sorted(cpu.raw)
    for name, sets in cpu.raw.items():
        for key, values in sets.items():
            np.testing.assert_allclose(
                cuda.raw[name][key], values, rtol=1e-4, atol=1e-5, err_msg=name
            )
