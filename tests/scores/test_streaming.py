"""Every streaming fit (row chunks of memory-mapped cached outputs) equals the in-memory fit.

The outputs go through the real extraction cache (``OutputsWriter`` → memory-mapped ``.npy``)
and the chunk size is forced down to a few rows, so each fit really walks several chunks and
drops their pages; each fitted quantity is compared with an independent in-memory computation
(numpy, scikit-learn, brute force), to float tolerance, and exactly for the exact KNN index.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance

from oodlab.eval.cache import OutputsWriter, entry_dir
from oodlab.scores import _stream
from oodlab.scores.gradnorm import GradNorm
from oodlab.scores.imood_prior import AdaMaha
from oodlab.scores.kl_matching import KLMatching
from oodlab.scores.knn import KNN
from oodlab.scores.mahalanobis import Mahalanobis
from oodlab.scores.react import ReAct
from oodlab.scores.vim import ViM
from oodlab.types import Outputs

N, D, C = 203, 12, 5


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "CHUNK_BYTES", 7 * D * 8)  # 7 rows of float64 features


def _outputs(seed: int, n: int = N) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % C
    features = (torch.randn(n, D, generator=g) + 2 * torch.nn.functional.one_hot(labels, D)).relu()
    weight, bias = torch.randn(C, D, generator=g), torch.randn(C, generator=g)
    return features, features @ weight.T + bias, labels, weight, bias


@pytest.fixture
def mapped(tmp_path, small_chunks) -> tuple[Outputs, Outputs]:
    """Training outputs memory-mapped from a cache entry, and the same outputs in memory."""
    features, logits, labels, weight, bias = _outputs(0)
    writer = OutputsWriter(N, entry_dir(tmp_path, "m", "train"), "train")
    for rows in torch.arange(N).split(50):
        writer.append({"logits": logits[rows], "features": features[rows], "labels": labels[rows]})
    on_disk = writer.finish(weight, bias)
    assert _stream.is_file_backed(on_disk.features)
    return on_disk, Outputs(
        features=features, logits=logits, labels=labels, head_weight=weight, head_bias=bias
    )


@pytest.fixture
def test_set() -> Outputs:
    features, logits, _, weight, bias = _outputs(1, 61)
    return Outputs(logits, features, torch.full((61,), -1), head_weight=weight, head_bias=bias)


def test_row_chunks_release_pages_and_the_data_reads_back_unchanged(mapped):
    on_disk, memory = mapped
    for _ in range(2):  # the second pass re-reads pages dropped by the first
        blocks = list(_stream.row_chunks(on_disk.features))
        assert len(blocks) == -(-N // 7)
        assert torch.equal(torch.cat(blocks), memory.features)


def test_mahalanobis_fit_equals_sklearn_on_the_whole_bank(mapped, test_set):
    on_disk, memory = mapped
    fitted = Mahalanobis().fit(on_disk)
    x, y = memory.features.double().numpy(), memory.labels.numpy()
    means = np.stack([x[y == c].mean(0) for c in range(C)])
    np.testing.assert_allclose(fitted.class_means_.numpy(), means, rtol=1e-12)
    sk = EmpiricalCovariance(assume_centered=True).fit(x - means[y])
    np.testing.assert_allclose(fitted.precision_.numpy(), sk.precision_, rtol=1e-9, atol=1e-12)
    # ada_maha reuses the same fit instead of running its own pass.
    ada = AdaMaha().fit(on_disk)
    assert ada.mahalanobis_.precision_ is fitted.precision_
    d2 = (test_set.features.double().numpy()[:, None] - means) @ sk.precision_
    expected = np.einsum("ncd,ncd->nc", d2, test_set.features.double().numpy()[:, None] - means)
    np.testing.assert_allclose(fitted.score(test_set).numpy(), expected.min(1), rtol=1e-5)


def test_vim_fit_equals_the_in_memory_eigendecomposition(mapped, test_set):
    on_disk, memory = mapped
    fitted = ViM(dim=6).fit(on_disk)
    w, b = memory.head_weight.double().numpy(), memory.head_bias.double().numpy()
    origin = -np.linalg.pinv(w) @ b
    centred = memory.features.double().numpy() - origin
    _, vectors = np.linalg.eigh(centred.T @ centred / N)
    basis = vectors[:, : D - 6]
    residual = np.linalg.norm(centred @ basis, axis=1)
    alpha = memory.logits.double().numpy().max(1).sum() / residual.sum()
    assert fitted.alpha_ == pytest.approx(alpha, rel=1e-9)
    test_centred = test_set.features.double().numpy() - origin
    logits = test_set.logits.double().numpy()
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    expected = alpha * np.linalg.norm(test_centred @ basis, axis=1) - lse
    np.testing.assert_allclose(fitted.score(test_set).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("percentile", [0.0, 37.5, 90.0, 99.0, 100.0])
def test_react_threshold_is_numpys_percentile_of_every_entry(mapped, percentile):
    on_disk, memory = mapped
    fitted = ReAct(percentile=percentile).fit(on_disk)
    expected = np.percentile(memory.features.double().numpy().ravel(), percentile)
    assert fitted.threshold_ == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_streaming_percentile_survives_an_unrepresentative_sample(small_chunks):
    values = torch.zeros(500, 3)
    values[400:] = torch.arange(300, dtype=torch.float32).reshape(100, 3)  # sorted rows
    for q in (50.0, 85.0, 95.0):
        got = _stream.streaming_percentile(values, q, sample_values=3, seed=1)
        assert got == pytest.approx(np.percentile(values.double().numpy(), q), abs=1e-12)


@pytest.mark.parametrize("labels_from", ["predicted", "true"])
def test_kl_templates_equal_the_mean_softmax_per_class(mapped, labels_from):
    on_disk, memory = mapped
    fitted = KLMatching(template_labels=labels_from).fit(on_disk)
    logits = memory.logits.double().numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assigned = logits.argmax(1) if labels_from == "predicted" else memory.labels.numpy()
    for c in range(C):
        expected = probs[assigned == c].mean(0) if (assigned == c).any() else np.eye(C)[c]
        np.testing.assert_allclose(fitted.templates_[c].numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_knn_built_chunk_by_chunk_equals_the_in_memory_bank(mapped, test_set, backend, fraction):
    on_disk, memory = mapped
    streamed = KNN(k=4, bank_fraction=fraction, backend=backend, seed=2).fit(on_disk)
    keep = round(fraction * N)
    rows = torch.randperm(N, generator=torch.Generator().manual_seed(2))[:keep].sort().values
    bank = memory.features[rows]
    bank = bank / bank.norm(dim=1, keepdim=True)
    assert torch.equal(streamed.bank_, bank)  # exactly the same rows, normalised the same way
    queries = test_set.features / test_set.features.norm(dim=1, keepdim=True)
    d2 = torch.cdist(queries.double(), bank.double()) ** 2
    expected = d2.sort(dim=1).values[:, 3]
    np.testing.assert_allclose(streamed.score(test_set).double(), expected, rtol=1e-4, atol=1e-5)
    if backend == "faiss":  # exact index: identical to an index built from the whole bank
        whole = KNN(k=4, bank_fraction=fraction, seed=2).fit(memory)
        assert torch.equal(streamed.score(test_set), whole.score(test_set))


def test_gradnorm_from_cached_logits_equals_the_recomputed_closed_form(small_chunks, test_set):
    h = test_set.features.double()
    w, b = test_set.head_weight.double(), test_set.head_bias.double()
    p = torch.softmax(h @ w.T + b, dim=1)
    expected = -((C * p - 1).abs().sum(1) * h.abs().sum(1))
    torch.testing.assert_close(GradNorm().score(test_set).double(), expected, rtol=1e-5, atol=1e-4)
