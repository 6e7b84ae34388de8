"""Scores that rebuild logits read the classifier's input: ASCOOD's z-score, not the raw h.

The model is the one ASCOOD trains (``attach_heads(..., zscore_sigma=0.5)``: ``features`` the
raw h, ``head`` = ``W·zscore(h) + b``); every expected value is computed independently here
(numpy z-score, the model's own forward pass, autograd through the model).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from oodlab.eval.extract import ExtractConfig, cache_path, dataset_fingerprint, extract
from oodlab.eval.extract import model_fingerprint as fingerprint
from oodlab.models import MODELS
from oodlab.models.heads import BinaryDiscriminator, attach_heads
from oodlab.models.two_branch import TwoBranch
from oodlab.scores.ash import ASH
from oodlab.scores.base import head_features
from oodlab.scores.gradnorm import GradNorm
from oodlab.scores.imood_prior import AdaGradNorm
from oodlab.scores.mcm import MCM
from oodlab.scores.react import ReAct
from oodlab.scores.vim import ViM
from oodlab.types import HEAD_INPUT

SIGMA = 0.5
CLASSES = 4


def _ascood_model() -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = MODELS.create("small_cnn", num_classes=CLASSES, in_channels=1, width=0.25)
    return attach_heads(backbone, CLASSES, zscore_sigma=SIGMA).eval()


def _data(n: int = 96) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 12, 12, generator=g)
    return TensorDataset(x, torch.arange(n) % CLASSES)


def _config(tmp_path, cache: bool = False) -> ExtractConfig:
    cache_dir = tmp_path / "cache" if cache else None
    return ExtractConfig(batch_size=32, device="cpu", cache_dir=cache_dir, quiet=True)


def _zscore_numpy(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.float64)
    mean = h.mean(axis=1, keepdims=True)
    std = h.std(axis=1, ddof=1, keepdims=True)  # torch's default, unbiased
    return SIGMA * (h - mean) / (std + 1e-6)


@pytest.fixture(scope="module")
def ascood(tmp_path_factory):
    model, data = _ascood_model(), _data()
    out = extract(model, data, _config(tmp_path_factory.mktemp("x")))
    return model, data.tensors[0], out


def test_extracted_head_input_is_the_zscore_computed_by_hand(ascood, tmp_path):
    model, x, out = ascood
    with torch.no_grad():
        h = model.features(x)
        own_logits = model(x).double()
    torch.testing.assert_close(out.features, h)  # features stay the raw h
    z = _zscore_numpy(h.numpy())
    np.testing.assert_allclose(out.extras[HEAD_INPUT].numpy(), z, rtol=1e-5, atol=1e-6)
    assert head_features(out) is out.extras[HEAD_INPUT]
    weight, bias = out.head_weight.double().numpy(), out.head_bias.double().numpy()
    np.testing.assert_allclose(z @ weight.T + bias, own_logits.numpy(), atol=1e-5)
    # ... while W h + b, what the scores computed before, is not the model's output.
    assert not np.allclose(h.double().numpy() @ weight.T + bias, own_logits.numpy(), atol=1e-2)
    with torch.no_grad():
        torch.testing.assert_close(TwoBranch(model).head_input(h), torch.from_numpy(z).float())


def test_cache_keeps_head_input_and_entries_without_it_are_not_reused(tmp_path):
    model, data = _ascood_model(), _data(40)
    first = extract(model, data, _config(tmp_path, cache=True))
    path = cache_path(tmp_path / "cache", fingerprint(model), dataset_fingerprint(data))
    torch.testing.assert_close(
        extract(model, data, _config(tmp_path, cache=True)).extras[HEAD_INPUT],
        first.extras[HEAD_INPUT],
    )
    # An entry of an older cache format (format 1 had no head_input) must not be served.
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format": 1}))
    (path / "extra.head_input.npy").unlink()
    again = extract(model, data, _config(tmp_path, cache=True))
    torch.testing.assert_close(again.extras[HEAD_INPUT], first.extras[HEAD_INPUT])


def _energy_of_own_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return -torch.logsumexp(model(x).double(), dim=1)


def test_react_without_clipping_and_ash_identity_are_the_energy_of_the_models_logits(ascood):
    model, x, out = ascood
    expected = _energy_of_own_logits(model, x)
    react = ReAct(percentile=100).fit(out)
    assert react.threshold_ == pytest.approx(float(out.extras[HEAD_INPUT].max()))
    torch.testing.assert_close(react.score(out).double(), expected, atol=1e-4, rtol=1e-5)
    # ASH-P keeping every activation (p = 0) is the identity.
    torch.testing.assert_close(
        ASH(percentile=0, variant="p").score(out).double(), expected, atol=1e-4, rtol=1e-5
    )


def test_gradnorm_is_the_autograd_norm_of_the_fc_weight_gradient(ascood):
    model, x, out = ascood
    fc = model.linear_head()
    expected = []
    for row in x[:16]:
        model.zero_grad(set_to_none=True)
        logits = model(row[None])
        # GradNorm's loss: cross-entropy against an all-ones target (official code, OpenOOD).
        loss = -torch.log_softmax(logits, dim=1).sum()
        loss.backward()
        expected.append(float(fc.weight.grad.abs().sum()))
    model.zero_grad(set_to_none=True)
    head = out.subset(torch.arange(16))
    norms = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(GradNorm().score(head).double(), -norms, rtol=1e-4, atol=1e-5)
    ada = AdaGradNorm().fit(out)
    torch.testing.assert_close(ada.id_ness(head), norms / CLASSES, rtol=1e-4, atol=1e-6)


def test_vim_subspace_origin_and_residual_live_in_the_head_input_space(ascood):
    _, _, out = ascood
    dim = 12
    vim = ViM(dim=dim).fit(out)
    z = out.extras[HEAD_INPUT].double().numpy()
    weight, bias = out.head_weight.double().numpy(), out.head_bias.double().numpy()
    origin = -np.linalg.pinv(weight) @ bias
    np.testing.assert_allclose(vim.origin_.numpy(), origin, atol=1e-8)
    centred = z - origin
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(z))
    assert eigenvalues[z.shape[1] - dim] > 1.01 * eigenvalues[z.shape[1] - dim - 1]  # a gap
    residual = eigenvectors[:, : z.shape[1] - dim]
    np.testing.assert_allclose(
        vim.residual_basis_.numpy() @ vim.residual_basis_.numpy().T,
        residual @ residual.T,
        atol=1e-6,
    )
    norms = np.linalg.norm(centred @ residual, axis=1)
    alpha = out.logits.double().numpy().max(1).sum() / norms.sum()
    assert vim.alpha_ == pytest.approx(alpha, rel=1e-6)
    lse = np.log(np.exp(out.logits.double().numpy()).sum(1))
    np.testing.assert_allclose(vim.score(out).numpy(), alpha * norms - lse, rtol=1e-5, atol=1e-5)


def test_mcm_with_the_classifier_rows_uses_their_space(ascood):
    _, _, out = ascood
    z = out.extras[HEAD_INPUT].double().numpy()
    weight = out.head_weight.double().numpy()
    cos = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (
        weight / np.linalg.norm(weight, axis=1, keepdims=True)
    ).T
    probs = np.exp(cos) / np.exp(cos).sum(1, keepdims=True)
    np.testing.assert_allclose(MCM().score(out).numpy(), -probs.max(1), rtol=1e-5, atol=1e-6)


def test_a_model_without_pre_head_caches_no_head_input(toy, tmp_path):
    torch.manual_seed(0)
    backbone = MODELS.create("small_cnn", num_classes=CLASSES, in_channels=1, width=0.25)
    model = attach_heads(backbone, CLASSES, heads={"bin_logit": {}}).eval()
    assert isinstance(model.extra_heads["bin_logit"], BinaryDiscriminator)
    data = _data(20)
    out = extract(model, data, _config(tmp_path))
    assert set(out.extras) == {"bin_logit"}
    assert head_features(out) is out.features
    assert TwoBranch(model).head_input(out.features) is None
    plain = extract(toy.model, TensorDataset(toy.x_id, toy.y_id), _config(tmp_path))
    assert plain.extras == {}
    assert head_features(plain) is plain.features
    # The scores then read the features exactly as before.
    with torch.no_grad():
        weight, bias = backbone.linear.weight.double(), backbone.linear.bias.double()
        energy = -torch.logsumexp(out.features.double() @ weight.T + bias, dim=1)
    torch.testing.assert_close(ReAct(100).fit(out).score(out).double(), energy, atol=1e-5, rtol=0)
