"""Pretrained initialisation: weight-standardised convs, BiT's official ``.npz`` layout, torchvision
``.pth`` files into oodlab's ResNets, the training hook, and the one-line errors.

The BiT files are written here from the official key names and shapes (HWIO kernels), and the
expected placements and forward passes are computed by hand with functional ops, not by the
loader's own mapping.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import oodlab.train.methods.mos  # noqa: F401  (registers the recipe)
from oodlab.config import MethodConfig, ModelConfig, RunConfig, from_dict
from oodlab.errors import CheckpointError
from oodlab.models import MODELS, load_pretrained
from oodlab.models.bit import BiTResNetV2, StdConv2d, bit_key
from oodlab.train.loop import train
from oodlab.train.run import build_model, load_model_from_run

EPS = 1e-10  # BiT's weight-standardisation epsilon
GN_EPS = 1e-5  # torch.nn.GroupNorm's default, as BiT's PyTorch code


def official_shapes(block_units, num_classes, in_channels=3):
    """Key → shape of an official BiT-R*x1 ``.npz`` (HWIO kernels), written out by hand."""
    shapes = {"resnet/root_block/standardized_conv2d/kernel": (7, 7, in_channels, 64)}
    c_in = 64
    for b, units in enumerate(block_units, start=1):
        mid = 64 * 2 ** (b - 1)
        out = 4 * mid
        for u in range(1, units + 1):
            p = f"resnet/block{b}/unit{u:02d}/"
            cin = c_in if u == 1 else out
            shapes |= {p + "a/group_norm/gamma": (cin,), p + "a/group_norm/beta": (cin,)}
            shapes[p + "a/standardized_conv2d/kernel"] = (1, 1, cin, mid)
            shapes |= {p + "b/group_norm/gamma": (mid,), p + "b/group_norm/beta": (mid,)}
            shapes[p + "b/standardized_conv2d/kernel"] = (3, 3, mid, mid)
            shapes |= {p + "c/group_norm/gamma": (mid,), p + "c/group_norm/beta": (mid,)}
            shapes[p + "c/standardized_conv2d/kernel"] = (1, 1, mid, out)
            if u == 1:
                shapes[p + "a/proj/standardized_conv2d/kernel"] = (1, 1, cin, out)
        c_in = out
    shapes |= {"resnet/group_norm/gamma": (2048,), "resnet/group_norm/beta": (2048,)}
    shapes["resnet/head/conv2d/kernel"] = (1, 1, 2048, num_classes)
    shapes["resnet/head/conv2d/bias"] = (num_classes,)
    return shapes


def official_npz(path, block_units, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in official_shapes(block_units, num_classes).items():
        scale = 1.0 if key.endswith("gamma") else 0.1
        base = 1.0 if key.endswith("gamma") else 0.0
        arrays[key] = (base + scale * rng.standard_normal(shape)).astype(np.float32)
    np.savez(path, **arrays)
    return arrays


def ws_conv(x, kernel_hwio, stride=1, padding=0):
    """Weight-standardised conv from an HWIO numpy kernel, by hand in float64."""
    w = torch.from_numpy(np.ascontiguousarray(np.transpose(kernel_hwio, (3, 2, 0, 1)))).double()
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    var = ((w - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return F.conv2d(x, (w - mean) / torch.sqrt(var + EPS), stride=stride, padding=padding)


def gn_relu(x, arrays, prefix):
    gamma = torch.from_numpy(arrays[prefix + "gamma"]).double()
    beta = torch.from_numpy(arrays[prefix + "beta"]).double()
    return F.relu(F.group_norm(x, 32, gamma, beta, eps=GN_EPS))


def unit_by_hand(x, arrays, p, stride):
    """One pre-activation bottleneck of the official layout, from the arrays."""
    out = gn_relu(x, arrays, p + "a/group_norm/")
    proj = p + "a/proj/standardized_conv2d/kernel"
    residual = ws_conv(out, arrays[proj], stride) if proj in arrays else x
    out = ws_conv(out, arrays[p + "a/standardized_conv2d/kernel"])
    out = ws_conv(
        gn_relu(out, arrays, p + "b/group_norm/"),
        arrays[p + "b/standardized_conv2d/kernel"],
        stride,
        1,
    )
    out = ws_conv(
        gn_relu(out, arrays, p + "c/group_norm/"), arrays[p + "c/standardized_conv2d/kernel"]
    )
    return out + residual


def root_by_hand(x, arrays):
    out = ws_conv(x, arrays["resnet/root_block/standardized_conv2d/kernel"], 2, 3)
    return F.max_pool2d(F.pad(out, (1, 1, 1, 1), value=0.0), 3, 2)


def test_weight_standardised_conv_matches_a_hand_computation():
    torch.manual_seed(0)
    conv = StdConv2d(4, 8, 3, stride=2, padding=1, bias=True)
    with torch.no_grad():
        conv.weight.mul_(5.0).add_(torch.randn(8, 1, 1, 1))  # far from standardised
    x = torch.randn(2, 4, 9, 9)
    kernel = conv.weight.detach().permute(2, 3, 1, 0).numpy()  # OIHW → HWIO
    expected = ws_conv(x.double(), kernel, 2, 1) + conv.bias.detach().double().view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), expected.float(), rtol=1e-5, atol=1e-5)
    # Standardisation removes a per-output-channel scale and shift of the kernel.
    with torch.no_grad():
        conv.weight.mul_(torch.rand(8, 1, 1, 1) + 0.5).add_(torch.randn(8, 1, 1, 1))
    torch.testing.assert_close(conv(x), expected.float(), rtol=1e-4, atol=1e-4)


def test_official_bit_keys_name_every_tensor_of_r101x1():
    model = MODELS.create("bit_s_r101x1", num_classes=1000)
    own = model.state_dict()
    shapes = {bit_key(k): s for k, s in official_shapes([3, 4, 23, 3], 1000).items()}
    assert set(shapes) == set(own)
    for key, shape in shapes.items():  # HWIO kernels are OIHW here; the head is a Linear
        hwio = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape
        assert own[key].shape == ((hwio[0], hwio[1]) if key == "fc.weight" else hwio), key
    assert sum(p.numel() for p in model.parameters()) == 44_541_480  # timm: 44.54M
    assert model.feature_dim == 2048
    assert not model.fc.weight.any()  # BiT's zero head
    assert not model.fc.bias.any()


def test_bit_npz_round_trip_places_tensors_and_reproduces_a_hand_forward(tmp_path):
    path = tmp_path / "BiT-S-R101x1.npz"
    arrays = official_npz(path, [1, 1, 1, 1], num_classes=5)
    model = BiTResNetV2(num_classes=5, block_units=[1, 1, 1, 1]).eval()
    assert load_pretrained(model, path, "bit_s_r101x1") == []
    root = arrays["resnet/root_block/standardized_conv2d/kernel"]
    w = model.root.weight.detach().numpy()
    for o, i, h, k in [(0, 0, 0, 0), (63, 2, 6, 1), (17, 1, 3, 5)]:
        assert w[o, i, h, k] == root[h, k, i, o]
    unit = model.block2[0]
    p = "resnet/block2/unit01/"
    np.testing.assert_array_equal(
        unit.gn1.weight.detach().numpy(), arrays[p + "a/group_norm/gamma"]
    )
    np.testing.assert_array_equal(unit.gn3.bias.detach().numpy(), arrays[p + "c/group_norm/beta"])
    np.testing.assert_array_equal(
        unit.conv2.weight.detach().numpy()[5, 7],
        arrays[p + "b/standardized_conv2d/kernel"][:, :, 7, 5],
    )
    proj = arrays[p + "a/proj/standardized_conv2d/kernel"][0, 0]  # (in, out)
    np.testing.assert_array_equal(unit.downsample.weight.detach().numpy()[:, :, 0, 0], proj.T)
    head = arrays["resnet/head/conv2d/kernel"][0, 0]  # (2048, 5)
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), head.T)

    torch.manual_seed(0)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        stem = model.pool(model.root(x))
        torch.testing.assert_close(
            stem.double(), root_by_hand(x.double(), arrays), rtol=1e-4, atol=1e-4
        )
        h = model.block1(stem)
        torch.testing.assert_close(
            unit(h).double(), unit_by_hand(h.double(), arrays, p, 2), rtol=1e-4, atol=1e-4
        )
        logits = model(x)
    z = root_by_hand(x.double(), arrays)
    for b in range(1, 5):
        z = unit_by_hand(z, arrays, f"resnet/block{b}/unit01/", 1 if b == 1 else 2)
    z = gn_relu(z, arrays, "resnet/group_norm/").mean(dim=(2, 3))
    expected = z @ torch.from_numpy(head).double() + torch.from_numpy(
        arrays["resnet/head/conv2d/bias"]
    )
    torch.testing.assert_close(logits.double(), expected, rtol=1e-3, atol=1e-4)


def test_bit_head_of_another_class_count_is_dropped_and_stays_zero(tmp_path):
    path = tmp_path / "BiT-S-R101x1.npz"
    arrays = official_npz(path, [1, 1, 1, 1], num_classes=7)
    model = BiTResNetV2(num_classes=3, block_units=[1, 1, 1, 1])
    assert load_pretrained(model, path, "bit_s_r101x1") == ["fc.bias", "fc.weight"]
    assert not model.fc.weight.any()
    assert not model.fc.bias.any()
    np.testing.assert_array_equal(
        model.norm.weight.detach().numpy(), arrays["resnet/group_norm/gamma"]
    )


@pytest.mark.parametrize("layout", ["bare", "nested"])
def test_torchvision_resnet18_loads_into_oodlab_with_a_fresh_fc(tmp_path, layout):
    torch.manual_seed(1)
    theirs = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    state = theirs.state_dict()
    if layout == "nested":  # a DDP checkpoint: {"state_dict": {"module.conv1.weight": ...}}
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    torch.manual_seed(2)
    ours = MODELS.create("resnet18", num_classes=10).eval()
    fresh = {k: v.clone() for k, v in ours.fc.state_dict().items()}
    assert load_pretrained(ours, path, "resnet18") == ["fc.bias", "fc.weight"]
    reference = theirs.state_dict()
    for key, value in ours.state_dict().items():
        if key.startswith("fc."):
            torch.testing.assert_close(value, fresh[key.removeprefix("fc.")], rtol=0, atol=0)
        else:
            torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert ours.fc.weight.shape == (10, 512)
    theirs.fc = nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.features(x), theirs(x))


def test_a_matching_classifier_is_loaded_too(tmp_path):
    torch.manual_seed(1)
    theirs = torchvision.models.resnet18(weights=None, num_classes=10)
    path = tmp_path / "r18.pth"
    torch.save({"model": theirs.state_dict()}, path)
    ours = MODELS.create("resnet18", num_classes=10)
    assert load_pretrained(ours, path, "resnet18") == []
    torch.testing.assert_close(ours.fc.weight, theirs.fc.weight, rtol=0, atol=0)


def test_build_model_loads_weights_only_for_training(tmp_path):
    torch.manual_seed(3)
    source = MODELS.create("resnet18", num_classes=1000)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(source.state_dict(), path)
    config = ModelConfig(name="resnet18", weights=str(path), mean=[0.5] * 3, std=[0.5] * 3)
    trained = build_model(config, MethodConfig(name="ce"), 10, 3, pretrained=True)
    untouched = build_model(config, MethodConfig(name="ce"), 10, 3)
    torch.testing.assert_close(trained.backbone.conv1.weight, source.conv1.weight, rtol=0, atol=0)
    assert not torch.equal(untouched.backbone.conv1.weight, source.conv1.weight)


def test_training_records_the_weights_hash_and_a_frozen_backbone_keeps_them(tmp_path):
    torch.manual_seed(4)
    source = MODELS.create("small_cnn", num_classes=7, in_channels=1, width=0.5, norm="none")
    path = tmp_path / "small.pt"
    torch.save(source.state_dict(), path)
    config = from_dict(
        RunConfig,
        {
            "data": {"benchmark": "synthetic", "batch_size": 16},
            "model": {
                "name": "small_cnn",
                "options": {"width": 0.5, "norm": "none"},
                "weights": str(path),
            },
            "train": {"epochs": 1, "lr": 0.01, "quiet": True, "device": "cpu"},
            "method": {"name": "mos", "options": {"groups": [1, 0, 1, 0], "freeze_backbone": True}},
        },
    )
    run = tmp_path / "run"
    train(config, run)
    meta = json.loads((run / "meta.json").read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["model_weights"] == {"path": str(path), "sha256": digest}
    model = load_model_from_run(run)
    for key, value in source.state_dict().items():
        if not key.startswith("linear."):  # the 7-way classifier was dropped
            torch.testing.assert_close(model.backbone.state_dict()[key], value, rtol=0, atol=0)


def test_a_missing_file_says_where_to_get_it(tmp_path):
    model = MODELS.create("resnet18", num_classes=10)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model, tmp_path / "nowhere" / "resnet18-f37072fd.pth", "resnet18")
    message = str(info.value)
    assert "\n" not in message
    assert "does not exist" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    bit = BiTResNetV2(block_units=[1, 1, 1, 1])
    with pytest.raises(
        CheckpointError, match=re.escape("googleapis.com/bit_models/BiT-S-R101x1.npz")
    ):
        load_pretrained(bit, tmp_path / "BiT-S-R101x1.npz", "bit_s_r101x1")


def test_weights_of_another_architecture_raise_one_line_naming_the_expected_file(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    model = MODELS.create("resnet18", num_classes=10)
    before = model.conv1.weight.clone()
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model, path, "resnet18")
    message = str(info.value)
    assert "\n" not in message
    assert "torchvision's resnet18-f37072fd.pth" in message
    assert "unexpected (layer1.0.bn3.bias, layer1.0.bn3.num_batches_tracked" in message
    assert "of another shape (layer1.0.conv1.weight" in message
    torch.testing.assert_close(model.conv1.weight, before, rtol=0, atol=0)  # nothing loaded
    npz = tmp_path / "BiT-S-R101x1.npz"
    official_npz(npz, [1, 1, 1, 1], num_classes=10)
    with pytest.raises(CheckpointError, match=r"missing .*expected torchvision's resnet18"):
        load_pretrained(model, npz, "resnet18")
