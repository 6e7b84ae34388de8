"""Extraction's device options: autocast, channels-last, pinned non-blocking copies.

On the CPU the default pass is a plain float32 pass (bit-identical to running the model);
bfloat16 autocast and channels-last are exercised on the CPU too (``autocast="bf16"``,
``channels_last=True``); the CUDA path (pinned copies written while the next batch runs) is
``gpu``-marked and compared with the CPU outputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from oodlab.errors import ConfigError
from oodlab.eval.extract import ExtractConfig, extract


def _conv_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 4),
    ).eval()  # fmt: skip


def _images(n: int = 20) -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=generator), torch.arange(n) % 4)


def _config(tmp_path, **kw) -> ExtractConfig:
    return ExtractConfig(batch_size=8, device="cpu", cache_dir=tmp_path / "c", quiet=True, **kw)


def _reference(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        z = model[:4](x)
        return model[4](z), z


def test_the_default_cpu_pass_is_plain_float32_and_off_shares_its_entry(tmp_path):
    model, data = _conv_model(), _images()
    passes: list[str] = []
    out = extract(model, data, _config(tmp_path), on_forward=passes.append)
    logits, z = _reference(model, data.tensors[0])
    assert torch.equal(out.features, z)
    assert torch.equal(out.logits, logits)
    again = extract(model, data, _config(tmp_path, autocast="off"), on_forward=passes.append)
    assert len(passes) == 1  # "off" on the CPU is the default pass: served from its entry
    assert torch.equal(again.features, out.features)


def test_bf16_autocast_has_its_own_entry_and_bf16_rounding(tmp_path):
    model, data = _conv_model(), _images()
    passes: list[str] = []
    plain = extract(model, data, _config(tmp_path), on_forward=passes.append)
    bf16 = extract(model, data, _config(tmp_path, autocast="bf16"), on_forward=passes.append)
    assert len(passes) == 2  # not served from the float32 entry
    assert bf16.features.dtype == bf16.logits.dtype == torch.float32
    assert not torch.equal(bf16.logits, plain.logits)  # it did run in bfloat16
    # A few bfloat16 operations (8-bit mantissa each): within a few 2^-8 of the float32 pass.
    scale = plain.logits.abs().max()
    assert (bf16.logits - plain.logits).abs().max() <= 4 * 2**-8 * scale


def test_channels_last_gives_the_same_outputs(tmp_path):
    model, data = _conv_model(), _images()
    plain = extract(model, data, _config(tmp_path, channels_last=False))
    cl_model = _conv_model()
    cl = extract(cl_model, data, ExtractConfig(batch_size=8, device="cpu", cache_dir=None,
                                               quiet=True, channels_last=True))  # fmt: skip
    assert cl_model[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl.features, plain.features, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cl.logits, plain.logits, rtol=1e-5, atol=1e-6)


def test_a_bad_autocast_value_is_one_line():
    with pytest.raises(ConfigError, match="autocast must be 'auto', 'bf16' or 'off'"):
        ExtractConfig(autocast="fp8")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("autocast", "tolerance"), [("off", 1e-4), ("auto", 4 * 2**-8)])
@pytest.mark.parametrize("cache", [True, False])
def test_cuda_extraction_equals_the_cpu_pass(tmp_path, autocast, tolerance, cache):
    model, data = _conv_model(), _images(50)
    cpu = extract(model, data, _config(tmp_path / "cpu"))
    config = ExtractConfig(
        batch_size=8, device="cuda", cache_dir=tmp_path / "cuda" if cache else None,
        quiet=True, autocast=autocast,
    )  # fmt: skip
    cuda = extract(model, data, config)
    assert cuda.features.device.type == "cpu"
    scale = cpu.logits.abs().max()
    assert (cuda.logits - cpu.logits).abs().max() <= tolerance * scale
    assert torch.equal(cuda.labels, cpu.labels)
