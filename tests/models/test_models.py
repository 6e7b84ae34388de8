from __future__ import annotations

import pytest
import torch

from oodlab.errors import CheckpointError
from oodlab.models import MODELS
from oodlab.models.resnet_cifar import load_released_state_dict
from oodlab.types import FeatureClassifier


@pytest.mark.parametrize(("name", "dim"), [("small_cnn", 128), ("resnet18_cifar", 512)])
def test_features_head_split(name, dim):
    torch.manual_seed(0)
    model = MODELS.create(name, num_classes=7, in_channels=1).eval()
    assert isinstance(model, FeatureClassifier)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        z = model.features(x)
        assert z.shape == (3, dim)
        torch.testing.assert_close(model(x), model.linear_head()(z))


def test_resnet18_cifar_layout_and_size():
    model = MODELS.create("resnet18_cifar", num_classes=10, in_channels=3)
    n_params = sum(p.numel() for p in model.parameters())
    assert 11_150_000 < n_params < 11_200_000  # the kuangliu ResNet-18 has 11,173,962
    assert "layer2.0.shortcut.1.weight" in model.state_dict()


def test_released_checkpoint_layout_loads():
    """A PASCL-style checkpoint: DataParallel prefix plus extra heads the model lacks."""
    torch.manual_seed(0)
    source = MODELS.create("resnet18_cifar", num_classes=10, in_channels=3, width=0.125)
    released = {f"module.{k}": v for k, v in source.state_dict().items()}
    released["module.projection.0.weight"] = torch.randn(4, 4)
    released["module.finalScore"] = torch.zeros(64)
    target = MODELS.create("resnet18_cifar", num_classes=10, in_channels=3, width=0.125)
    skipped = load_released_state_dict(target, released)
    assert skipped == ["finalScore", "projection.0.weight"]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source.eval()(x))
    partial = {k: v for k, v in released.items() if "linear" not in k}
    with pytest.raises(CheckpointError, match="lacks"):
        load_released_state_dict(target, partial)


def test_heads():
    from oodlab.models.heads import GroupSoftmaxHead, ProjectionHead, WithHeads, ZScoreClassifier

    torch.manual_seed(0)
    z = torch.randn(5, 12) * 3 + 1
    assert torch.allclose(ProjectionHead(12, 4)(z).norm(dim=1), torch.ones(5))
    zscore = ZScoreClassifier(torch.nn.Linear(12, 3), sigma=0.5)
    standard = zscore.standardise(z)
    torch.testing.assert_close(standard.mean(1), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(standard.std(1), torch.full((5,), 0.5), atol=1e-5, rtol=0)
    assert "sigma" in zscore.state_dict()  # a buffer: saved and restored with the weights
    group = GroupSoftmaxHead(12, [3, 2])
    assert torch.equal(group(z), torch.zeros(5, 5))  # zero-initialised, as MOS
    backbone = MODELS.create("small_cnn", num_classes=3, in_channels=1, width=0.25)
    model = WithHeads(backbone, {"projection": ProjectionHead(backbone.feature_dim, 8)})
    x = torch.randn(2, 1, 28, 28)
    feats = model.features(x)
    assert set(model.extra_outputs(feats)) == {"projection"}
    assert model.linear_head() is backbone.linear


def test_torchvision_resnet50_adapter():
    torch.manual_seed(0)
    model = MODELS.create("resnet50", num_classes=5, in_channels=3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        z = model.features(x)
        assert z.shape == (1, 2048)
        torch.testing.assert_close(model(x), model.net(x))  # same as torchvision's own forward
