"""Extra heads and the WithHeads wrapper, each against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.errors import ConfigError
from oodlab.models import MODELS, WithHeads, attach_heads
from oodlab.models.heads import (
    BinaryDiscriminator,
    GroupSoftmaxHead,
    LinearHead,
    ProjectionHead,
    ZScore,
)


def backbone(num_classes: int = 3):
    torch.manual_seed(0)
    return MODELS.create("small_cnn", num_classes=num_classes, in_channels=1, width=0.25).eval()


def test_projection_head_is_the_normalised_mlp():
    torch.manual_seed(0)
    head = ProjectionHead(12, 4)
    z = torch.randn(5, 12) * 3 + 1
    hidden = torch.relu(z @ head[0].weight.T + head[0].bias)
    out = hidden @ head[2].weight.T + head[2].bias
    torch.testing.assert_close(head(z), out / out.norm(dim=1, keepdim=True))
    patt = ProjectionHead(12, 6, batch_norm=True, normalize=False)  # PATT's ImageNet layout
    assert sorted({k.split(".")[0] for k in patt.state_dict()}) == ["0", "1", "3"]


def test_binary_discriminator_and_linear_heads():
    torch.manual_seed(0)
    z = torch.randn(4, 12)
    linear = BinaryDiscriminator(12)
    torch.testing.assert_close(linear(z), (z @ linear[0].weight.T + linear[0].bias)[:, 0])
    mlp = BinaryDiscriminator(12, hidden=5)  # NPOS's uncertainty MLP
    assert mlp(z).shape == (4,)
    assert len(mlp) == 3
    gamma = LinearHead(12, num_classes=7)
    assert gamma.weight.shape == (7, 12)
    assert torch.equal(gamma.bias, torch.zeros(7))


def test_zscore_matches_numpy_with_unbiased_std():
    h = torch.randn(6, 10, generator=torch.Generator().manual_seed(1)) * 4 + 2
    values = h.numpy().astype(np.float64)
    expected = (
        0.5
        * (values - values.mean(1, keepdims=True))
        / (values.std(1, ddof=1, keepdims=True) + 1e-6)
    )
    np.testing.assert_allclose(ZScore(0.5)(h).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert "sigma" in ZScore().state_dict()


def test_group_softmax_head():
    head = GroupSoftmaxHead(12, [3, 2])
    assert head.group_sizes == [3, 2]
    assert torch.equal(head(torch.randn(4, 12)), torch.zeros(4, 5))  # zero-initialised
    with pytest.raises(ConfigError, match="group_sizes"):
        GroupSoftmaxHead(12, [1, 3])


def test_with_heads_normalises_inputs_and_keeps_raw_features():
    net = backbone()
    model = WithHeads(net, {"bin_logit": BinaryDiscriminator(32)}, mean=[0.5], std=[0.25])
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), net.features((x - 0.5) / 0.25))
        torch.testing.assert_close(model(x), net((x - 0.5) / 0.25))
        extras = model.extra_outputs(model.features(x))
    assert set(extras) == {"bin_logit"}
    assert extras["bin_logit"].shape == (2,)
    assert model.linear_head() is net.linear


def test_zscore_classifier_and_replaced_classifier():
    net = backbone()
    ascood = attach_heads(net, 3, zscore_sigma=0.5)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        h = ascood.features(x)
        torch.testing.assert_close(h, net.features(x))  # features stay the raw h
        torch.testing.assert_close(ascood(x), net.linear(ZScore(0.5)(h)))
    mos = attach_heads(backbone(), 3, classifier={"kind": "group_softmax", "group_sizes": [2, 3]})
    assert mos.group_sizes == [2, 3]
    assert mos(x).shape == (2, 5)
    assert mos.linear_head() is mos.classifier
    assert not any(p.requires_grad for p in mos.backbone.linear.parameters())


def test_attach_heads_builds_declared_heads_or_nothing():
    net = backbone()
    assert attach_heads(net, 3) is net
    model = attach_heads(net, 3, {"projection": {"out_dim": 8}, "gamma": {"kind": "linear"}})
    assert set(model.extra_heads) == {"projection", "gamma"}
    assert model.extra_heads["gamma"].out_features == 3
    with pytest.raises(ConfigError, match="projection"):
        attach_heads(backbone(), 3, {"projection": {"out_dims": 8}})
