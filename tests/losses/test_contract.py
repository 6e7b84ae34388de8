"""Contract of every registered loss: a finite scalar, deterministic, and a gradient that
reaches every input it should train (and none it must not)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from oodlab.losses import LOSSES

C, D, B, B_AUX = 4, 8, 6, 5
COUNTS = [40, 20, 8, 3]
PRIOR = torch.tensor(COUNTS, dtype=torch.float32) / sum(COUNTS)


def _inputs(seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = {
        "logits": torch.randn(B + B_AUX, C, generator=g),
        "logits2": torch.randn(B, C, generator=g),
        "z": torch.randn(B, D, generator=g),
        "z2": torch.randn(B, D, generator=g),
        "z_aux": torch.randn(B_AUX, D, generator=g),
        "g": torch.randn(B + B_AUX, generator=g),
        "gamma": torch.randn(B + B_AUX, C, generator=g),
        "group_logits": torch.randn(B, 6, generator=g),  # MOS: groups {0, 1}, {2, 3} + others
    }
    return {k: v.requires_grad_() for k, v in t.items()}


Y = torch.tensor([0, 1, 2, 3, 3, 2])
TARGETS = torch.cat([Y, torch.full((B_AUX,), -1)])
IS_AUX = TARGETS < 0


def make(name: str, *args, **kwargs):
    return LOSSES.get(name).factory(*args, **kwargs)


Case = Callable[[dict[str, Tensor]], tuple[Tensor, tuple[str, ...]]]


def _ce(t):
    loss = make("ce", PRIOR, 1.0)(t["logits"][:B], Y)
    return loss, ("logits",)


def _mixed(name: str, *args) -> Case:
    def case(t):
        return make(name, *args)(t["logits"], TARGETS, IS_AUX), ("logits",)

    return case


def _bin_disc(t):
    return make("bin_disc", 0.5)(t["logits"], t["g"], TARGETS, IS_AUX), ("logits", "g")


def _pascl(t):
    loss = make("pascl", COUNTS, k=0.5)
    proj = [F.normalize(t["z"], dim=1), F.normalize(t["z2"], dim=1)]
    value = loss(
        [t["logits"][:B], t["logits2"]], proj, Y, t["logits"][B:], F.normalize(t["z_aux"], dim=1)
    )
    return value, ("logits", "logits2", "z", "z2", "z_aux")


def _imood(t):
    terms = make("imood", PRIOR)(t["logits"], t["g"], t["gamma"], TARGETS, IS_AUX)
    return terms["hinge"] + terms["bce"], ("g", "gamma")  # logits: posterior is detached


def _proco(t):
    return make("proco", C, D, PRIOR)(t["z"], Y), ("z",)


def _patt(t):
    value = make("patt", C, D, PRIOR)(t["logits2"], t["z"], t["z2"], Y, t["logits"][B:])
    return value, ("logits2", "z", "z2", "logits")


def _npos(t):
    value = make("npos", C, D)(F.normalize(t["z"], dim=1), Y, t["g"][:B], t["g"][B:])
    return value, ("z", "g")


def _npos_features(t):
    terms = make("npos_features", 8.0, 0.1).terms(t["logits2"], Y, t["g"][:B], t["g"][B:])
    return terms["loss"], ("logits2", "g")


def _mos(t):
    return make("mos", [[0, 1], [2, 3]])(t["group_logits"], Y), ("group_logits",)


CASES: dict[str, Case] = {
    "ascood": _mixed("ascood", 1.0),
    "mos": _mos,
    "npos": _npos,
    "npos_features": _npos_features,
    "ce": _ce,
    "oe": _mixed("oe", 0.5),
    "energy_oe": _mixed("energy_oe", 0.1, -2.0, -1.0),
    "bin_disc": _bin_disc,
    "pascl": _pascl,
    "imood": _imood,
    "proco": _proco,
    "patt": _patt,
}


def test_every_registered_loss_has_a_contract_case():
    assert sorted(LOSSES.names()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_scalar_deterministic_and_gradients_reach_the_trained_inputs(name):
    torch.manual_seed(0)
    t = _inputs(0)
    value, trained = CASES[name](t)
    torch.manual_seed(0)
    again, _ = CASES[name](_inputs(0))
    assert value.ndim == 0
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(again.item(), rel=1e-6)
    value.backward()
    for key, tensor in t.items():
        reached = tensor.grad is not None and bool(tensor.grad.abs().sum() > 0)
        assert reached == (key in trained), f"{name}: gradient to {key}: {reached}"
