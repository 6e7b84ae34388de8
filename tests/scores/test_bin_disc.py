"""BinDisc ``1 − σ(g)`` on hand-worked logits, and its input checks."""

from __future__ import annotations

import math

import pytest
import torch

from oodlab.errors import DataError
from oodlab.scores.bin_disc import BinDisc, bin_disc
from oodlab.types import Outputs


def test_hand_worked_values():
    g = torch.tensor([0.0, math.log(3.0), -math.log(3.0)])
    # σ(0) = 1/2; σ(log 3) = 3/4; σ(−log 3) = 1/4.
    assert bin_disc(g).tolist() == pytest.approx([0.5, 0.25, 0.75])


def test_large_logit_keeps_a_positive_ood_probability():
    # 1 − σ(40) ≈ e^{−40} ≈ 4.25e-18: not rounded to 0, so ranks among confident ID survive.
    values = bin_disc(torch.tensor([40.0, 41.0]))
    assert values[0].item() == pytest.approx(math.exp(-40), rel=1e-5)
    assert values[0] > values[1] > 0


def test_class_reads_the_bin_logit_extra(toy):
    g = toy.ood.extras["bin_logit"]
    torch.testing.assert_close(BinDisc().score(toy.ood), 1 - torch.sigmoid(g))
    column = Outputs(
        logits=toy.ood.logits,
        features=toy.ood.features,
        labels=toy.ood.labels,
        extras={"bin_logit": g[:, None]},
    )
    torch.testing.assert_close(BinDisc().score(column), 1 - torch.sigmoid(g))


def test_missing_or_malformed_extra_raises(toy):
    plain = Outputs(logits=toy.id.logits, features=toy.id.features, labels=toy.id.labels)
    with pytest.raises(DataError, match="bin_logit"):
        BinDisc().score(plain)
    with pytest.raises(DataError, match="one logit per sample"):
        bin_disc(torch.zeros(5, 2))


def test_has_no_hyperparameters():
    assert BinDisc.param_names() == []
