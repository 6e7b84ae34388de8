"""GPU defaults of the training loop: channels_last on CUDA unless set, fused optimisers there."""

from __future__ import annotations

import pytest
import torch

from oodlab.config import TrainConfig
from oodlab.train.loop import uses_channels_last
from oodlab.train.optim import build_optimizer


def test_channels_last_defaults_to_cuda_only_and_an_explicit_value_wins():
    assert uses_channels_last(None, torch.device("cuda")) is True
    assert uses_channels_last(None, torch.device("cpu")) is False
    assert uses_channels_last(False, torch.device("cuda")) is False
    assert uses_channels_last(True, torch.device("cpu")) is True


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fused_is_ignored_for_cpu_parameters_and_the_update_is_unchanged(optimizer):
    torch.manual_seed(0)
    config = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.0)
    weights = [torch.nn.Parameter(torch.randn(3, 2)) for _ in range(2)]
    for w in weights:
        w.grad = torch.ones_like(w)
    plain = build_optimizer([{"params": [weights[0]], "lr": 0.1}], config)
    asked = build_optimizer([{"params": [weights[1]], "lr": 0.1}], config, fused=True)
    assert not asked.param_groups[0].get("fused")
    before = [w.detach().clone() for w in weights]
    plain.step()
    asked.step()
    torch.testing.assert_close(weights[0] - before[0], weights[1] - before[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_adam_on_cuda_matches_the_default_update():
    config = TrainConfig(optimizer="adam", lr=0.1)
    weights = [torch.nn.Parameter(torch.randn(3, 2, device="cuda")) for _ in range(2)]
    with torch.no_grad():
        weights[1].copy_(weights[0])
    for w in weights:
        w.grad = torch.ones_like(w)
    build_optimizer([{"params": [weights[0]], "lr": 0.1}], config).step()
    fused = build_optimizer([{"params": [weights[1]], "lr": 0.1}], config, fused=True)
    assert fused.param_groups[0]["fused"]
    fused.step()
    torch.testing.assert_close(weights[0], weights[1])
