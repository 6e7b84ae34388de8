"""The input normalisation contract: read from a model, parsed from the CLI, refused unknown."""

from __future__ import annotations

import pytest
import torch

from oodlab.cli import main
from oodlab.errors import ConfigError
from oodlab.eval.checkpoint import NORMALIZATION_NAMES
from oodlab.models import MODELS, input_normalization
from oodlab.models.heads import WithHeads
from oodlab.models.normalization import (
    NORMALIZATIONS,
    attach_normalization,
    input_std,
    parse_normalize,
)
from oodlab.models.two_branch import TwoBranch


def test_names_in_the_cli_help_are_the_registered_ones():
    assert tuple(NORMALIZATIONS) == NORMALIZATION_NAMES


def test_input_normalization_reads_the_buffers_and_looks_through_wrappers():
    backbone = MODELS.create("small_cnn", num_classes=3, in_channels=3, width=0.25)
    assert input_normalization(backbone) is None
    model = WithHeads(backbone, mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0])
    mean, std = input_normalization(model)
    assert mean.tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert std.tolist() == pytest.approx([0.5, 0.25, 2.0])
    assert input_std(TwoBranch(model)) == pytest.approx((0.5, 0.25, 2.0))
    # the model really applies it: features of x equal the backbone's features of (x - m) / s
    x = torch.rand(2, 3, 8, 8)
    by_hand = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 2.0]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(model.features(x), backbone.features(by_hand))


def test_a_model_may_declare_its_own():
    class Declares(torch.nn.Module):
        def input_normalization(self):
            return (0.5, 0.5), (0.25, 4.0)

    mean, std = input_normalization(Declares())
    assert mean.tolist() == [0.5, 0.5]
    assert std.tolist() == [0.25, 4.0]


def test_parse_normalize_forms():
    assert parse_normalize("none") is None
    assert parse_normalize("BiT") == ((0.5,) * 3, (0.5,) * 3)
    assert parse_normalize("0.5,0.25") == ((0.5,), (0.25,))
    assert parse_normalize("0.1,0.2,0.3/1,2,3") == ((0.1, 0.2, 0.3), (1.0, 2.0, 3.0))
    for bad in ("cifar", "0.5", "1,2/3", "0.5,0"):
        with pytest.raises(ConfigError) as info:
            parse_normalize(bad)
        assert "\n" not in str(info.value)


def test_attach_broadcasts_one_value_and_checks_channels():
    backbone = MODELS.create("small_cnn", num_classes=3, in_channels=1, width=0.25)
    model = attach_normalization(backbone, ((0.5,), (0.5,)), channels=1)
    assert input_std(model) == (0.5,)
    rgb = MODELS.create("small_cnn", num_classes=3, in_channels=3, width=0.25)
    assert input_std(attach_normalization(rgb, ((0.5,), (0.5,)), channels=3)) == (0.5,) * 3
    with pytest.raises(ConfigError, match="3-channel"):
        attach_normalization(rgb, ((0.5, 0.5), (1.0, 1.0)), channels=3)
    assert attach_normalization(rgb, None, channels=3) is rgb


def _weights(tmp_path):
    path = tmp_path / "w.pt"
    model = MODELS.create("small_cnn", num_classes=4, in_channels=1, width=0.25)
    torch.save(model.state_dict(), path)
    return path


def _argv(path, tmp_path, *extra):
    return ["eval", "--checkpoint", str(path), "--model", "small_cnn", "--model-set",
            "width=0.25", "--benchmark", "synthetic", "--scores", "msp", "--device", "cpu",
            "--quiet", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "e"),
            *extra]  # fmt: skip


def test_checkpoint_with_unknown_normalisation_is_refused(tmp_path, capsys):
    assert main(_argv(_weights(tmp_path), tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "input normalisation" in err
    assert "--normalize" in err
    assert "\n" not in err


def test_checkpoint_takes_normalize_or_model_set_mean_std(tmp_path, monkeypatch, capsys):
    import sys

    import oodlab.eval.evaluate  # noqa: F401  (the package re-exports a function of that name)

    evaluate_module = sys.modules["oodlab.eval.evaluate"]

    seen = []
    real = evaluate_module.evaluate

    def spy(model, *args, **kwargs):
        seen.append(input_std(model))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", spy)
    path = _weights(tmp_path)
    assert main(_argv(path, tmp_path, "--normalize", "0.5,0.25")) == 0
    assert main(_argv(path, tmp_path, "--model-set", "mean=[0.1]", "--model-set", "std=[0.3]")) == 0
    assert main(_argv(path, tmp_path, "--normalize", "none")) == 0
    assert seen == [pytest.approx((0.25,)), pytest.approx((0.3,)), None]
    capsys.readouterr()
    assert main(_argv(path, tmp_path, "--model-set", "mean=[0.1]")) == 2
    assert "go together" in capsys.readouterr().err
