"""NPOS synthesis against brute force: k-th neighbour distances, boundary selection, per-point
top-R rejection, Gaussian candidates, and the class queues (FIFO, persistence, state)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodlab.errors import ConfigError, DataError
from oodlab.synthesis.npos import (
    NPOSSynthesizer,
    fifo_push,
    gaussian_candidates,
    kth_sqdist,
    reject_farthest,
    select_boundary,
    synthesize,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_kth(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    out = []
    for q in queries:
        d = sorted(float(((q - b) ** 2).sum()) for b in bank)
        out.append(d[k - 1])
    return np.array(out)


def _data(seed: int, m: int = 40, d: int = 6) -> torch.Tensor:
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_kth_distance_matches_brute_force_and_counts_the_self_match():
    bank = torch.nn.functional.normalize(_data(0), dim=1)
    got = kth_sqdist(bank, bank, 5).numpy()
    np.testing.assert_allclose(got, _brute_kth(bank.numpy(), bank.numpy(), 5), atol=1e-9)
    assert np.abs(kth_sqdist(bank, bank, 1).numpy()).max() < 1e-9  # the row itself
    # Batched over a leading class dimension: each class against its own bank.
    banks = torch.stack([bank, bank.flip(0) * 0.5])
    queries = torch.nn.functional.normalize(_data(9, m=7), dim=1).expand(2, 7, 6)
    got = kth_sqdist(banks, queries, 3).numpy()
    for c in range(2):
        expected = _brute_kth(banks[c].numpy(), queries[c].numpy(), 3)
        np.testing.assert_allclose(got[c], expected, atol=1e-9)


def test_boundary_selection_is_the_largest_kth_distance_set():
    bank = torch.nn.functional.normalize(_data(1), dim=1)
    chosen = select_boundary(bank, k=7, select=9)
    d = _brute_kth(bank.numpy(), bank.numpy(), 7)
    assert set(chosen.tolist()) == set(np.argsort(-d)[:9].tolist())


def test_rejection_keeps_each_points_farthest_candidates_by_brute_force():
    g = torch.Generator().manual_seed(2)
    queue = _data(2)
    bank = torch.nn.functional.normalize(queue, dim=1)
    candidates = queue[:3, None, :] + 0.5 * torch.randn(3, 11, 6, generator=g, dtype=torch.float64)
    kept = reject_farthest(candidates, bank, k=4, keep=4)
    assert kept.shape == (3, 4, 6)
    for p in range(3):
        d = _brute_kth(bank.numpy(), _unit(candidates[p].numpy()), 4)
        expected = candidates[p].numpy()[np.argsort(-d)[:4]]  # unnormalised, descending d_K
        np.testing.assert_allclose(kept[p].numpy(), expected)
    # The code's (S, P) re-indexing would mix the blocks: every kept row comes from its own point.
    flat = candidates.reshape(-1, 6)
    for p in range(3):
        for row in kept[p]:
            owner = int((flat - row).abs().sum(1).argmin()) // 11
            assert owner == p


def test_synthesize_reproduces_the_algorithm_step_by_step():
    queues = torch.stack([_data(3, m=30), _data(13, m=30) + 1.0])
    noise = torch.randn(12, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = synthesize(queues, noise, 5, 8, 3, 0.2, 2, torch.Generator().manual_seed(5))
    assert out.shape == (2, 6, 6)
    draws = torch.rand(2, 8, generator=torch.Generator().manual_seed(5)).argsort(1)[:, :3]
    for c in range(2):
        queue = queues[c].numpy()
        bank = _unit(queue)
        d = _brute_kth(bank, bank, 5)
        boundary = np.argsort(-d)[:8]  # descending d_K, as the selection's order
        expected = []
        for b in boundary[draws[c].numpy()]:
            cands = queue[b] + 0.2 * noise.numpy()  # the same noise for every class and point
            dk = _brute_kth(bank, _unit(cands), 5)
            expected.append(cands[np.argsort(-dk)[:2]])
        np.testing.assert_allclose(out[c].numpy(), np.concatenate(expected), rtol=1e-9)


def test_gaussian_candidates_have_mean_anchor_and_covariance_sigma_squared():
    anchors = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]], dtype=torch.float64)
    noise = torch.randn(20000, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    cands = gaussian_candidates(anchors, noise, 0.1)
    for p in range(2):
        centred = cands[p] - anchors[p]
        assert torch.allclose(centred.mean(0), torch.zeros(3, dtype=torch.float64), atol=0.004)
        cov = centred.T @ centred / (len(centred) - 1)
        assert torch.allclose(cov, 0.01 * torch.eye(3, dtype=torch.float64), atol=0.0006)
    # The same noise vectors serve every anchor (shared across points, as the paper's code).
    assert torch.allclose(cands[0] - anchors[0], cands[1] - anchors[1])


def test_queues_are_fifo_fill_before_ready_and_persist_across_epochs():
    synth = NPOSSynthesizer(2, queue_size=3, noise_samples=4, select=2, pick=1, keep=1, k=2)
    reference: dict[int, list[float]] = {0: [], 1: []}
    rows = torch.arange(10, dtype=torch.float32)
    labels = torch.tensor([0, 0, 1, 0, 0, 1, 0, 1, 1, 0])
    for start in (0, 4, 7):
        chunk = slice(start, start + 4 if start < 7 else 10)
        feats = torch.stack([rows[chunk], -rows[chunk]], 1)
        synth.push(feats, labels[chunk])
        for value, c in zip(rows[chunk].tolist(), labels[chunk].tolist()):
            reference[c] = (reference[c] + [value])[-3:]
    for c in (0, 1):
        assert synth.queue[c, :, 0].tolist() == reference[c]
    assert synth.ready
    before = synth.queue.clone()
    synth.new_epoch()  # default: no reset
    assert torch.equal(synth.queue, before)
    state = synth.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    other = NPOSSynthesizer(2, queue_size=3, noise_samples=4, select=2, pick=1, keep=1, k=2)
    other.load_state_dict(state)
    assert torch.equal(other.queue, before)
    assert other.ready


def test_reset_flag_zeroes_rows_but_keeps_the_queues_full():
    synth = NPOSSynthesizer(
        1, queue_size=2, noise_samples=3, select=1, pick=1, keep=1, k=1, reset_each_epoch=True
    )
    synth.push(torch.ones(2, 4), torch.zeros(2, dtype=torch.long))
    synth.new_epoch()
    assert synth.ready
    assert synth.queue.abs().sum() == 0
    assert torch.isfinite(synth.sample()).all()


def test_not_ready_and_bad_arguments_fail_with_one_line():
    synth = NPOSSynthesizer(2, queue_size=3, noise_samples=4, select=2, pick=1, keep=1, k=2)
    synth.push(torch.randn(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(DataError, match="every class queue full"):
        synth.sample()
    with pytest.raises(DataError, match="4-d"):
        synth.push(torch.randn(1, 5), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ConfigError, match="k=9 must be"):
        kth_sqdist(torch.zeros(4, 2), torch.zeros(1, 2), 9)
    with pytest.raises(ConfigError, match="k <= queue_size"):
        NPOSSynthesizer(2, queue_size=3, k=4, select=2, pick=1)
    with pytest.raises(ConfigError, match="keep <= noise_samples"):
        NPOSSynthesizer(2, queue_size=3, k=2, select=2, pick=1, keep=5, noise_samples=4)


def test_a_step_yields_c_p_r_outliers_near_their_class_boundary():
    g = torch.Generator().manual_seed(7)
    centres = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    feats = torch.cat([c + 0.3 * torch.randn(50, 2, generator=g) for c in centres])
    labels = torch.arange(2).repeat_interleave(50)
    synth = NPOSSynthesizer(2, queue_size=50, noise_samples=30, select=10, pick=3, keep=4, k=5)
    synth.push(feats, labels)
    out = synth.sample(torch.Generator().manual_seed(8))
    assert out.shape == (2 * 3 * 4, 2)
    # Class-major order: each class's outliers lie near that class's queue.
    near = torch.cdist(out, centres).argmin(1)
    assert near.tolist() == [0] * 12 + [1] * 12


# -- the official code's behaviours, reproduced on request (transcriptions use faiss) -------


def official_distance_selection(target: torch.Tensor, bank: np.ndarray, k: int, keep: int, s: int):
    """Re-typed ``KNN_dis_search_distance`` of the official code (training_from_scratch/
    KNN.py): normalise the P·S stacked candidates, k-th distance from a faiss flat index,
    ``view(length, -1)``, top-``keep`` down dim 0, then ``i*length + minD_idx[:, i]``."""
    import faiss

    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(bank.astype(np.float32))
    normed = target / torch.norm(target, p=2, dim=1, keepdim=True)
    distance, _ = index.search(normed.numpy().astype(np.float32), k)
    k_th = torch.from_numpy(distance[:, -1]).view(s, -1)
    _, min_idx = torch.topk(k_th, keep, dim=0)
    min_idx = min_idx.squeeze()
    rows = torch.cat([i * s + min_idx[:, i] for i in range(min_idx.shape[1])])
    return target[rows]


def test_official_rejection_ranks_in_one_layout_and_returns_the_other():
    g = torch.Generator().manual_seed(5)
    bank = torch.nn.functional.normalize(torch.randn(30, 4, generator=g), dim=1)
    anchors = torch.randn(3, 4, generator=g)  # P = 3 boundary points
    noise = torch.randn(8, 4, generator=g)  # S = 8
    candidates = gaussian_candidates(anchors, noise, 0.5)  # (3, 8, 4), block layout p·S + s
    expected = official_distance_selection(candidates.reshape(-1, 4), bank.numpy(), 5, 2, 8)
    got = reject_farthest(candidates, bank, 5, 2, "official")
    torch.testing.assert_close(got.reshape(-1, 4), expected, rtol=1e-6, atol=1e-6)
    # topk keeps each point's own 2 farthest (by brute force), which differs here.
    topk = reject_farthest(candidates, bank, 5, 2, "topk")
    for p in range(3):
        flat = _unit(candidates[p].numpy())
        own = np.argsort(-_brute_kth(bank.numpy(), flat, 5), kind="stable")[:2]
        np.testing.assert_allclose(topk[p].numpy(), candidates[p, own].numpy())
    assert not torch.allclose(topk, got)
    # With P = 1 the two layouts coincide (the official code would crash for R > 1).
    one = candidates[:1]
    torch.testing.assert_close(
        reject_farthest(one, bank, 5, 3, "official"), reject_farthest(one, bank, 5, 3, "topk")
    )


def test_official_reset_rows_pick_zero_rows_first_as_faiss_does():
    """After the code's per-epoch re-zeroing, zero rows normalise to NaN: faiss never returns
    them as neighbours and gives them +inf as queries, so they lead the boundary set; their
    candidates are σ·ε. Checked against faiss on the NaN-normalised queue."""
    import faiss

    g = torch.Generator().manual_seed(7)
    queue = torch.randn(20, 4, generator=g)
    queue[:3] = 0  # 3 re-zeroed rows (fewer than select: the boundary set is then fixed)
    with np.errstate(invalid="ignore"):
        normed = (queue / torch.norm(queue, dim=1, keepdim=True)).numpy().astype(np.float32)
    index = faiss.IndexFlatL2(4)
    index.add(normed)
    distance, _ = index.search(normed, 4)
    k_th = torch.from_numpy(distance[:, -1].copy())
    official = set(torch.topk(k_th, 6).indices.tolist())
    bank = torch.nn.functional.normalize(queue, dim=-1)
    valid = (queue != 0).any(-1)
    got = select_boundary(bank, 4, 6, valid)
    assert set(got.tolist()) == official
    assert set(got[:3].tolist()) == {0, 1, 2}
    # "origin" (oodlab's default): zero rows sit at the origin and are never boundary points.
    assert not {0, 1, 2} & set(select_boundary(bank, 4, 6).tolist())
    # Candidates of a zero row's boundary point: kth distances against faiss on the NaN bank.
    cand = 0.1 * torch.randn(5, 4, generator=g)
    expected, _ = index.search((cand / cand.norm(dim=1, keepdim=True)).numpy(), 4)
    got_d = kth_sqdist(bank, torch.nn.functional.normalize(cand, dim=-1), 4, valid)
    np.testing.assert_allclose(got_d.numpy(), expected[:, -1], rtol=1e-5, atol=1e-6)


def test_synthesizer_passes_the_official_options_through():
    torch.manual_seed(0)
    feats, labels = torch.randn(40, 4), torch.arange(2).repeat(20)
    kwargs = {"queue_size": 20, "noise_samples": 6, "select": 5, "pick": 2, "keep": 2, "k": 3}
    runs = {}
    for rejection in ("topk", "official"):
        synth = NPOSSynthesizer(2, reset_each_epoch=True, rejection=rejection, **kwargs)
        synth.push(feats, labels)
        runs[rejection] = synth.sample(torch.Generator().manual_seed(1))
    assert runs["topk"].shape == runs["official"].shape == (2 * 2 * 2, 4)
    assert not torch.equal(runs["topk"], runs["official"])
    nan_rows = NPOSSynthesizer(2, reset_each_epoch=True, reset_rows="official", **kwargs)
    nan_rows.push(feats, labels)
    nan_rows.new_epoch()  # every row zero, the queues still "full"
    nan_rows.push(feats[:2], labels[:2])  # one fresh row per class
    out = nan_rows.sample(torch.Generator().manual_seed(1))
    assert torch.isfinite(out).all()
    assert out.norm(dim=1).max() < 2.0  # σ·ε around the origin (σ = 0.1, d = 4)
    with pytest.raises(ConfigError, match="rejection"):
        NPOSSynthesizer(2, rejection="random", **kwargs)


def test_the_sync_free_push_equals_the_per_class_loop_exactly():
    # The gather form runs on accelerators; here both run on the CPU, push after push: filling,
    # classes absent from a batch, a class with more new rows than its queue, empty batches.
    generator = torch.Generator().manual_seed(3)
    synth = NPOSSynthesizer(4, queue_size=5, noise_samples=4, select=2, pick=1, keep=1, k=2)
    queue, counts = None, None
    for size in (3, 0, 7, 1, 12, 2, 9, 6):
        labels = torch.randint(0, 3 if size < 7 else 4, (size,), generator=generator)
        if size == 12:
            labels[:8] = 2  # eight new rows for class 2 in one batch, the queue holds five
        feats = torch.randn(size, 3, generator=generator)
        synth.push(feats, labels)
        if queue is None:
            queue, counts = torch.zeros(4, 5, 3), torch.zeros(4, dtype=torch.long)
        queue = fifo_push(queue, counts, feats, labels)
        assert torch.equal(queue, synth.queue)
        assert torch.equal(counts, synth.counts)
    assert counts.max() == 5  # full queues (dropping their oldest rows) and
    assert counts.min() < 5  # one still filling


def test_noise_and_picks_are_drawn_on_the_queue_device_with_the_global_generator():
    synth = NPOSSynthesizer(2, queue_size=3, noise_samples=4, select=2, pick=1, keep=1, k=2)
    synth.push(torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 2)
    torch.manual_seed(7)
    drawn = synth.sample()
    torch.manual_seed(7)  # the same draws as torch.randn / torch.rand on the CPU before
    expected = synthesize(synth.queue, torch.randn(4, 2), 2, 2, 1, 0.1, 1, None)
    assert torch.equal(drawn, expected.reshape(-1, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_queues_equal_the_cpu_queues_and_sampling_runs_there():
    generator = torch.Generator().manual_seed(4)
    kwargs = {"queue_size": 5, "noise_samples": 6, "select": 3, "pick": 2, "keep": 2, "k": 2}
    cpu, cuda = NPOSSynthesizer(3, **kwargs), NPOSSynthesizer(3, **kwargs)
    for size in (4, 9, 1, 12):
        labels = torch.randint(0, 3, (size,), generator=generator)
        feats = torch.randn(size, 4, generator=generator)
        cpu.push(feats, labels)
        cuda.push(feats.cuda(), labels.cuda())
    assert torch.equal(cuda.queue.cpu(), cpu.queue)
    assert torch.equal(cuda.counts.cpu(), cpu.counts)
    if cpu.ready:
        assert cuda.ready
        assert cuda.sample().device.type == "cuda"
