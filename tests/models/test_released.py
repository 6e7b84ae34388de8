"""Loading state dicts in the layouts of the released PASCL, ImOOD and PATT checkpoints.

Each test writes the released layout by hand, from the key names the official code uses
(long_tailed.md §1.2, §2.3, §3.2), by renaming a fresh oodlab model's keys the *other* way;
loading it into a second model must reproduce the first model's outputs exactly.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from oodlab.errors import CheckpointError
from oodlab.models import MODELS, attach_heads, load_released_state_dict


def cifar(num_classes: int = 10, **heads):
    model = MODELS.create("resnet18_cifar", num_classes=num_classes, in_channels=3, width=0.125)
    return attach_heads(model, num_classes, heads or None).eval()


def to_released(state: dict, prefix: str = "module.") -> dict:
    """oodlab → released names, written out: ``backbone.X`` → ``X``, our head names → theirs."""
    theirs = {"projection": "projection", "gamma": "lambda_linear"}
    out = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            key = key[len("backbone.") :]
        elif key.startswith("extra_heads."):
            name, rest = key[len("extra_heads.") :].split(".", 1)
            key = f"{theirs[name]}.{rest}"
        out[prefix + key] = value.clone()
    return out


def outputs(model, x):
    with torch.no_grad():
        z = model.features(x)
        extras = model.extra_outputs(z) if hasattr(model, "extra_outputs") else {}
        return model.head(z), extras


def test_pascl_layout_with_projection_and_unused_aux_linear():
    torch.manual_seed(0)
    source = cifar(projection={"out_dim": 16})
    released = to_released(source.state_dict())
    assert "module.layer2.0.shortcut.1.weight" in released
    assert "module.projection.2.weight" in released  # Linear, ReLU, Linear
    released["module.aux_linear.weight"] = torch.randn(10, 64)  # PASCL's unused d→C layer
    torch.manual_seed(1)
    target = cifar(projection={"out_dim": 16})
    unused = load_released_state_dict(target, released)
    assert set(unused) == {"aux_linear.weight"}
    x = torch.rand(2, 3, 32, 32)
    (a, ea), (b, eb) = outputs(source, x), outputs(target, x)
    assert torch.equal(a, b)
    assert torch.equal(ea["projection"], eb["projection"])


def test_imood_layout_with_extra_logit_and_gamma_head():
    torch.manual_seed(0)
    source = cifar(11, gamma={"kind": "linear", "out_dim": 10})  # C + 1 outputs (bin_disc)
    released = to_released(source.state_dict())
    released["module.aux_linear.weight"] = torch.ones(1, 1)  # ImOOD's Linear(1, 1)
    released["module.aux_linear.bias"] = torch.zeros(1)
    target = cifar(11, gamma={"kind": "linear", "out_dim": 10})
    unused = load_released_state_dict(target, released)
    assert set(unused) == {"aux_linear.weight", "aux_linear.bias"}
    x = torch.rand(2, 3, 32, 32)
    (a, ea), (b, eb) = outputs(source, x), outputs(target, x)
    assert torch.equal(a, b)
    assert torch.equal(ea["gamma"], eb["gamma"])


def test_patt_layout_returns_the_calibration_buffer():
    torch.manual_seed(0)
    source = cifar()
    released = to_released(source.state_dict(), prefix="")  # PATT saves without DataParallel
    released["finalScore"] = torch.linspace(0, 2, 64)
    target = cifar()
    unused = load_released_state_dict(target, released)
    assert torch.equal(unused["finalScore"], torch.linspace(0, 2, 64))
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(outputs(source, x)[0], outputs(target, x)[0])


def test_imagenet_layout_is_torchvision_behind_dataparallel():
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None, num_classes=6).eval()
    released = {f"module.{k}": v for k, v in reference.state_dict().items()}
    model = MODELS.create("resnet50", num_classes=6).eval()
    assert load_released_state_dict(model, released) == {}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def test_a_checkpoint_of_another_architecture_is_one_clear_line():
    released = to_released(cifar(num_classes=100).state_dict())
    with pytest.raises(CheckpointError, match="num_classes") as info:
        load_released_state_dict(cifar(num_classes=10), released)
    assert "\n" not in str(info.value)
    # Old checkpoints without BatchNorm's num_batches_tracked still load.
    released = to_released(cifar().state_dict())
    old = {k: v for k, v in released.items() if not k.endswith("num_batches_tracked")}
    assert load_released_state_dict(cifar(), old) == {}
