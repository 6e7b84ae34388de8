"""ASCOOD's uncertainty loss and MOS's group-wise cross-entropy against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import oodlab.losses.ascood
import oodlab.losses.mos  # noqa: F401  (registers the losses)
from oodlab.errors import ConfigError
from oodlab.losses import LOSSES
from oodlab.losses.ascood import ASCOODLoss, uniform_kl
from oodlab.losses.mos import GroupSoftmaxLoss, group_cross_entropy, group_label_table
from oodlab.scores.mos import mos, mos_predict


def test_uniform_kl_by_hand_and_by_torch_kl_div():
    # K = 2, logits (0, log 3): p = (1/4, 3/4); KL(u‖p) = ½ ln(½/¼) + ½ ln(½/¾).
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])
    by_hand = (0.5 * math.log(2) + 0.5 * math.log(2 / 3) + 0.0) / 2
    assert float(uniform_kl(logits)) == pytest.approx(by_hand)
    wide = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    reference = nn.functional.kl_div(
        torch.log_softmax(wide, 1), torch.full_like(wide, 0.2), reduction="batchmean"
    )
    assert float(uniform_kl(wide)) == pytest.approx(float(reference), rel=1e-6)


def test_ascood_loss_is_ce_on_id_plus_weighted_kl_on_outliers():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, generator=g, requires_grad=True)
    targets = torch.tensor([0, 1, 2, -1, -1, -1])
    is_aux = targets < 0
    loss = ASCOODLoss(weight=5.0)(logits, targets.clamp(min=0), is_aux)
    log_p = torch.log_softmax(logits.detach().double(), 1)
    ce = -(log_p[0, 0] + log_p[1, 1] + log_p[2, 2]) / 3
    kl = (-(log_p[3:].sum(1) / 3) - math.log(3)).mean()
    assert float(loss.detach()) == pytest.approx(float(ce + 5.0 * kl), rel=1e-6)
    loss.backward()
    assert bool((logits.grad[3:].abs() > 0).all())  # the outliers get a gradient
    assert LOSSES.get("ascood").factory is ASCOODLoss
    with pytest.raises(ConfigError, match="weight"):
        ASCOODLoss(weight=-1.0)


def test_group_labels_put_others_at_zero_in_every_other_group():
    # groups: {class 0, class 2} and {class 1}; within-group index + 1 in the own group.
    assert group_label_table([(0, 2), (1,)]).tolist() == [[1, 0], [0, 1], [2, 0]]


def test_one_group_equals_softmax_with_an_others_column():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 5, generator=g)  # column 0 = "others", then classes 0..3
    y = torch.randint(0, 4, (8,), generator=g)
    loss = GroupSoftmaxLoss([(0, 1, 2, 3)])(logits, y)
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(logits, y + 1)))


def test_group_cross_entropy_sums_the_groups_on_hand_made_logits():
    # Two groups: [others, class 0, class 2] and [others, class 1].
    logits = torch.tensor([[0.0, 2.0, 1.0, 3.0, 0.0], [1.0, 0.0, 0.0, 0.0, 2.0]])
    labels = torch.tensor([2, 1])
    loss = GroupSoftmaxLoss([(0, 2), (1,)])(logits, labels)

    def nll(row: list[float], k: int) -> float:
        return math.log(sum(math.exp(v) for v in row)) - row[k]

    # sample 0 (class 2): group A label 2, group B label 0; sample 1 (class 1): A 0, B 1.
    group_a = (nll([0, 2, 1], 2) + nll([1, 0, 0], 0)) / 2
    group_b = (nll([3, 0], 0) + nll([0, 2], 1)) / 2
    assert float(loss) == pytest.approx(group_a + group_b)  # summed, not averaged
    explicit = group_cross_entropy(logits, torch.tensor([[2, 0], [0, 1]]), [3, 2])
    assert float(explicit) == pytest.approx(group_a + group_b)


def test_mos_score_and_group_prediction_on_hand_made_logits():
    # Groups of sizes 3 and 2 ("others" first). Row 0: group A clearly class 1 of A.
    logits = torch.tensor([[0.0, math.log(8.0), 0.0, math.log(3.0), 0.0]])
    # p_A = (1, 8, 1)/10 → others 0.1; p_B = (3, 1)/4 → others 0.75; min = 0.1.
    assert float(mos(logits, [3, 2])[0]) == pytest.approx(0.1)
    # Best non-others: A's first class (0.8) beats B's class (0.25) → flat index 0.
    assert mos_predict(logits, [3, 2]).tolist() == [0]
