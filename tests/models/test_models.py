"""Backbones: the features/head contract over the registry, sizes, torchvision parity."""

from __future__ import annotations

import pytest
import torch
import torchvision

from oodlab.errors import ConfigError
from oodlab.models import MODELS
from oodlab.types import FeatureClassifier

SMALL = {"small_cnn": {"width": 0.25}, "resnet18_cifar": {"width": 0.125}}
SMALL |= {"resnet34_cifar": {"width": 0.125}}
SMALL |= {"clip_vit_tail": {"width": 16, "heads": 2, "blocks": 1, "out_dim": 8}}
TOKENS = {"clip_vit_tail": (2, 5, 16)}  # models on intermediate tokens, not images


IMAGE_MODELS = [n for n in MODELS.names() if "embeddings" not in MODELS.get(n).needs]


@pytest.mark.parametrize("name", IMAGE_MODELS)  # feature_tail: tests/models/test_feature_tail.py
def test_every_model_honours_the_features_head_contract(name):
    torch.manual_seed(0)
    model = MODELS.create(name, num_classes=7, in_channels=1, **SMALL.get(name, {})).eval()
    assert isinstance(model, FeatureClassifier)
    x = torch.randn(TOKENS.get(name, (2, 1, 28, 28)))  # 28: Fashion-MNIST; pooling takes any
    with torch.no_grad():
        z = model.features(x)
        assert z.shape == (2, model.feature_dim)
        logits = model(x)
        torch.testing.assert_close(logits, model.head(z))
        torch.testing.assert_close(
            logits, z @ model.linear_head().weight.T + model.linear_head().bias
        )
        # The last intermediate feature is the pooled penultimate feature itself.
        torch.testing.assert_close(model.intermediate_features(x)[-1], z)


def test_resnet18_cifar_has_the_kuangliu_size_and_names():
    model = MODELS.create("resnet18_cifar", num_classes=10, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962  # kuangliu's ResNet-18
    keys = model.state_dict()
    assert {"conv1.weight", "layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.running_var"} <= set(
        keys
    )
    assert "layer1.0.shortcut.0.weight" not in keys  # identity shortcut where shapes match
    assert model.features(torch.zeros(1, 3, 32, 32)).shape == (1, 512)
    wide = MODELS.create("resnet18_cifar", num_classes=10, in_channels=3, width=0.5)
    assert wide.feature_dim == 256


def test_small_cnn_size_and_norm_options():
    model = MODELS.create("small_cnn", num_classes=10, in_channels=1)
    assert 80_000 < sum(p.numel() for p in model.parameters()) < 120_000
    group = MODELS.create("small_cnn", num_classes=10, norm="group")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in group.modules())
    plain = MODELS.create("small_cnn", num_classes=10, norm="none")
    assert not any(
        isinstance(m, torch.nn.BatchNorm2d | torch.nn.GroupNorm) for m in plain.modules()
    )
    with pytest.raises(ConfigError, match="norm"):
        MODELS.create("small_cnn", norm="layer")


def test_torchvision_resnet50_equals_torchvision_with_the_same_weights():
    torch.manual_seed(0)
    ours = MODELS.create("resnet50", num_classes=5).eval()
    reference = torchvision.models.resnet50(weights=None, num_classes=5).eval()
    reference.load_state_dict(ours.state_dict())  # same names: torchvision's own
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))
        assert ours.features(x).shape == (1, 2048)
