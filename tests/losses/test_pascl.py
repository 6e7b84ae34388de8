"""PASCL's partial, asymmetric contrastive loss against a per-anchor brute force."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodlab.errors import ConfigError
from oodlab.losses.oe import outlier_exposure
from oodlab.losses.pascl import PASCLLoss, _masked_contrastive, pascl_contrastive, tail_classes


def brute_force(views, labels, aux, tail, temperature):
    """Loops over anchors: -mean over positives of log(exp(s_ip) / sum_{a != i} exp(s_ia))."""
    anchors = [(v[i], int(labels[i])) for v in views for i in range(len(labels)) if tail[labels[i]]]
    if not anchors:
        return 0.0
    contrast = [z for z, _ in anchors] + list(aux)
    losses = []
    for i, (zi, yi) in enumerate(anchors):
        denom = sum(
            math.exp(float(zi @ zc) / temperature) for j, zc in enumerate(contrast) if j != i
        )
        positives = [j for j, (_, yj) in enumerate(anchors) if j != i and yj == yi]
        terms = [
            math.log(math.exp(float(zi @ anchors[j][0]) / temperature) / denom) for j in positives
        ]
        losses.append(-sum(terms) / len(terms))
    return sum(losses) / len(losses)


def unit(n, d, seed):
    return F.normalize(
        torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1
    ).double()


def test_tail_classes_follow_the_counts_not_the_index():
    cifar10 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert tail_classes(cifar10, 0.4).nonzero().flatten().tolist() == [6, 7, 8, 9]
    cifar100 = [int(500 * 0.01 ** (c / 99)) for c in range(100)]
    assert tail_classes(cifar100, 0.4).nonzero().flatten().tolist() == list(range(60, 100))
    # k = 0.1 on 10 classes: round(0.9 * 10) = 9 although 1 - 0.9 != 0.1 in floating point.
    assert tail_classes(cifar10, 0.1).sum() == 1
    shuffled = [50, 5000, 83, 1077, 645]
    assert tail_classes(shuffled, 0.4).nonzero().flatten().tolist() == [0, 2]
    with pytest.raises(ConfigError, match="tail fraction"):
        tail_classes(cifar10, 0.0)


def test_loss_equals_the_per_anchor_brute_force():
    labels = torch.tensor([0, 3, 3, 2, 1, 3, 2])
    tail = torch.tensor([False, False, True, True])
    views, aux = [unit(7, 5, 0), unit(7, 5, 1)], unit(4, 5, 2)
    got = pascl_contrastive(views, labels, aux, tail, 0.2)
    assert got.item() == pytest.approx(brute_force(views, labels, aux, tail, 0.2), rel=1e-9)


def test_without_outliers_and_one_tail_class_it_is_supcon_on_the_tail():
    labels = torch.tensor([1, 1, 0, 1])
    tail = torch.tensor([False, True])
    views, no_aux = [unit(4, 3, 3), unit(4, 3, 4)], torch.zeros(0, 3, dtype=torch.float64)
    # SupCon (Khosla et al. Eq. 2) over the 6 tail views, all of one class: every other view
    # is a positive, so each anchor's loss is -mean_p s_ip/T + log sum_{a != i} exp(s_ia/T).
    z = torch.cat([views[0][labels == 1], views[1][labels == 1]])
    s = z @ z.T / 0.1
    off = ~torch.eye(6, dtype=torch.bool)
    expected = (-(s * off).sum(1) / 5 + torch.logsumexp(s.masked_fill(~off, -math.inf), 1)).mean()
    got = pascl_contrastive(views, labels, no_aux, tail, 0.1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_head_samples_play_no_part_and_no_tail_gives_zero_with_a_graph():
    labels = torch.tensor([0, 1, 1, 0])
    tail = torch.tensor([False, True])
    views, aux = [unit(4, 3, 5), unit(4, 3, 6)], unit(3, 3, 7)
    moved = [v.clone() for v in views]
    for v in moved:
        v[labels == 0] = unit(2, 3, 8)  # head-class projections changed: same loss
    assert pascl_contrastive(views, labels, aux, tail, 0.1).item() == pytest.approx(
        pascl_contrastive(moved, labels, aux, tail, 0.1).item(), rel=1e-12
    )
    head_only = torch.tensor([0, 0, 0, 0])
    z = unit(4, 3, 9).requires_grad_()
    loss = pascl_contrastive([z, z], head_only, aux, tail, 0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_outliers_are_negatives_only():
    labels = torch.tensor([1, 1])
    tail = torch.tensor([False, True])
    views = [unit(2, 4, 10), unit(2, 4, 11)]
    aux = unit(3, 4, 12).requires_grad_()
    pascl_contrastive(views, labels, aux, tail, 0.1).backward()
    # A negative pushed towards the anchors raises the loss: the gradient is non-zero.
    assert aux.grad.abs().sum() > 0
    far = -views[0][0:1].repeat(3, 1)  # outliers opposite the anchors lower the loss
    near = views[0][0:1].repeat(3, 1)
    assert pascl_contrastive(views, labels, far, tail, 0.1) < pascl_contrastive(
        views, labels, near, tail, 0.1
    )


def test_stage_one_loss_weights_its_three_terms():
    torch.manual_seed(0)
    counts = [100, 50, 20, 5]
    labels = torch.tensor([0, 3, 2, 3])
    logits = [torch.randn(4, 4), torch.randn(4, 4)]
    proj = [F.normalize(torch.randn(4, 8), dim=1) for _ in range(2)]
    aux_logits, aux_proj = torch.randn(3, 4), F.normalize(torch.randn(3, 8), dim=1)
    loss = PASCLLoss(counts, oe_weight=0.5, contrast_weight=0.1, temperature=0.07, k=0.5)
    ce = (F.cross_entropy(logits[0], labels) + F.cross_entropy(logits[1], labels)) / 2
    con = brute_force(proj, labels, aux_proj, tail_classes(counts, 0.5), 0.07)
    expected = ce + 0.5 * outlier_exposure(aux_logits) + 0.1 * con
    got = loss(logits, proj, labels, aux_logits, aux_proj)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("labels", "aux_rows"),
    [
        ([0, 3, 3, 2, 1, 3, 2], 4),  # the brute-force case
        ([0, 3, 3, 2, 1, 3, 2], 0),  # no outliers
        ([2, 3, 3, 2], 3),  # every sample a tail sample
        ([0, 1, 0, 1], 3),  # no tail sample: zero, with a graph
        ([0, 1, 0, 1], 0),  # no tail sample and no outlier
    ],
)
def test_the_sync_free_masked_form_equals_the_indexed_form(labels, aux_rows):
    # The masked form runs on accelerators (no host sync); here both run on the CPU.
    labels = torch.tensor(labels)
    tail = torch.tensor([False, False, True, True])
    views = [unit(len(labels), 5, 20).requires_grad_(), unit(len(labels), 5, 21).requires_grad_()]
    aux = unit(aux_rows, 5, 22).requires_grad_() if aux_rows else torch.zeros(0, 5).double()
    indexed = pascl_contrastive(views, labels, aux, tail, 0.2)
    grads = torch.autograd.grad(indexed, views, allow_unused=True)
    masked = _masked_contrastive(views, labels, aux, tail[labels], 0.2)
    masked_grads = torch.autograd.grad(masked, views, allow_unused=True)
    assert masked.item() == pytest.approx(indexed.item(), rel=1e-9, abs=1e-12)
    if aux_rows and labels.tolist() == [0, 3, 3, 2, 1, 3, 2]:
        plain = [v.detach() for v in views]
        assert masked.item() == pytest.approx(
            brute_force(plain, labels, aux.detach(), tail, 0.2), rel=1e-9
        )
    for a, b in zip(grads, masked_grads, strict=True):
        a = torch.zeros_like(b) if a is None else a
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_loss_equals_the_cpu_loss():
    labels = torch.tensor([0, 3, 3, 2, 1, 3, 2])
    tail = torch.tensor([False, False, True, True])
    views, aux = [unit(7, 5, 0), unit(7, 5, 1)], unit(4, 5, 2)
    cpu = pascl_contrastive(views, labels, aux, tail, 0.2)
    cuda = pascl_contrastive([v.cuda() for v in views], labels.cuda(), aux.cuda(), tail, 0.2)
    assert cuda.item() == pytest.approx(cpu.item(), rel=1e-9)
