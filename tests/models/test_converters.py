"""Every released format: official keys and shapes load through ``oodlab eval --checkpoint``'s
loader, the format is detected, and the outputs equal the re-typed official forward."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from oodlab.cli import build_parser
from oodlab.errors import CheckpointError, ConfigError
from oodlab.eval.checkpoint import load_checkpoint_model
from oodlab.models import input_normalization
from oodlab.models.converters import FORMATS, detect_format
from oodlab.models.normalization import NORMALIZATIONS

sys.path.insert(0, str(Path(__file__).parent))
import official_layouts as official  # the helper beside this file


def load(tmp_path, obj, *extra, num_classes, name="ckpt.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    args = build_parser().parse_args(
        ["eval", "--checkpoint", str(path), "--benchmark", "unused", *extra]
    )
    return load_checkpoint_model(args, num_classes, 3)


def normalised(x, name):
    mean, std = NORMALIZATIONS[name]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def check_norm(model, name):
    found = input_normalization(model)
    if NORMALIZATIONS[name] is None:
        assert found is None
    else:
        assert found[0].tolist() == pytest.approx(list(NORMALIZATIONS[name][0]))
        assert found[1].tolist() == pytest.approx(list(NORMALIZATIONS[name][1]))


def logits_of(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize(("classes", "norm"), [(10, "cifar10"), (100, "cifar100")])
def test_openood_resnet18_32x32(tmp_path, capsys, classes, norm):
    state = official.kuangliu_state(classes, classifier="fc")
    assert detect_format(state) == "openood_resnet18_32x32"
    model, scores = load(tmp_path, state, num_classes=classes)
    assert "openood_resnet18_32x32 (detected)" in capsys.readouterr().out
    check_norm(model, norm)
    x = torch.rand(2, 3, 32, 32)
    h = official.kuangliu_features(state, normalised(x, norm))
    expected = h @ state["fc.weight"].T + state["fc.bias"]
    torch.testing.assert_close(logits_of(model, x), expected, rtol=1e-4, atol=1e-4)
    assert scores[:2] == ["msp", "energy"]


@pytest.mark.parametrize("bottleneck", [False, True])
def test_torchvision_resnet_openood_224_and_resnet50(tmp_path, capsys, bottleneck):
    state = official.torchvision_state(7, bottleneck)
    dp = {f"module.{k}": v for k, v in state.items()}  # saved from nn.DataParallel
    assert detect_format(dp) == "torchvision_resnet"
    model, _ = load(tmp_path, {"state_dict": dp}, num_classes=7)
    check_norm(model, "imagenet")
    x = torch.rand(1, 3, 32, 32)
    h = official.torchvision_features(state, normalised(x, "imagenet"))
    torch.testing.assert_close(
        logits_of(model, x), h @ state["fc.weight"].T + state["fc.bias"], rtol=1e-4, atol=1e-4
    )


def _zscore(h, sigma):
    return sigma * (h - h.mean(1, keepdim=True)) / (h.std(1, keepdim=True) + 1e-6)


@pytest.mark.parametrize("cifar", [True, False])
def test_ascood_net_with_its_sigma(tmp_path, capsys, cifar):
    inner = (
        official.kuangliu_state(10, classifier="fc") if cifar else
        official.torchvision_state(2, bottleneck=False)
    )  # fmt: skip
    state = {f"backbone.{k}": v for k, v in inner.items()} | {"sigma": torch.tensor(0.5)}
    assert detect_format(state) == "ascood"
    classes = 10 if cifar else 2
    model, scores = load(tmp_path, state, num_classes=classes)
    out = capsys.readouterr().out
    assert "ascood (detected)" in out
    assert "sigma = 0.5" in out
    norm = "cifar10" if cifar else "imagenet"
    check_norm(model, norm)
    x = torch.rand(2, 3, 32, 32)
    feats = official.kuangliu_features if cifar else official.torchvision_features
    h = feats(inner, normalised(x, norm))
    expected = _zscore(h, 0.5) @ inner["fc.weight"].T + inner["fc.bias"]
    torch.testing.assert_close(logits_of(model, x), expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # features stay the raw h (OpenOOD's return_feature)
        torch.testing.assert_close(model.features(x), h, rtol=1e-4, atol=1e-4)
    assert scores[0] == ("scale" if cifar else "odin")


def test_npos_model_with_heads_and_prototypes(tmp_path, capsys):
    g = torch.Generator().manual_seed(3)
    encoder = official.kuangliu_state(0, blocks=(3, 4, 6, 3), classifier="")  # resnet34
    state = {f"encoder.module.{k}": v for k, v in encoder.items()}
    state |= {"fc.module.weight": torch.randn(100, 512, generator=g) / 20,
              "fc.module.bias": torch.randn(100, generator=g)}  # fmt: skip
    state |= {"head.module.0.weight": torch.randn(512, 512, generator=g) / 20,
              "head.module.0.bias": torch.randn(512, generator=g),
              "head.module.2.weight": torch.randn(128, 512, generator=g) / 20,
              "head.module.2.bias": torch.randn(128, generator=g)}  # fmt: skip
    state |= {"mlp.0.weight": torch.randn(128, 512, generator=g) / 20,
              "mlp.0.bias": torch.randn(128, generator=g),
              "mlp.2.weight": torch.randn(1, 128, generator=g) / 10,
              "mlp.2.bias": torch.randn(1, generator=g)}  # fmt: skip
    state["prototypes"] = F.normalize(torch.randn(100, 128, generator=g), dim=1)
    assert detect_format(state) == "npos"
    model, scores = load(
        tmp_path, {"epoch": 100, "state_dict": state, "criterion_disp": {}}, num_classes=100
    )
    assert "prototypes" in capsys.readouterr().out  # reported as not part of the model
    check_norm(model, "cifar100")
    x = torch.rand(2, 3, 32, 32)
    h = official.kuangliu_features(encoder, normalised(x, "cifar100"))
    with torch.no_grad():
        z = model.features(x)
        torch.testing.assert_close(model.head(z), h @ state["fc.module.weight"].T
                                   + state["fc.module.bias"], rtol=1e-4, atol=1e-4)  # fmt: skip
        extra = model.extra_outputs(z)
    proj = F.relu(h @ state["head.module.0.weight"].T + state["head.module.0.bias"])
    proj = F.normalize(proj @ state["head.module.2.weight"].T + state["head.module.2.bias"])
    torch.testing.assert_close(extra["projection"], proj, rtol=1e-4, atol=1e-4)
    phi = F.relu(h @ state["mlp.0.weight"].T + state["mlp.0.bias"])
    phi = (phi @ state["mlp.2.weight"].T + state["mlp.2.bias"]).squeeze(1)
    torch.testing.assert_close(extra["bin_logit"], phi, rtol=1e-4, atol=1e-4)
    assert scores[0] == "knn:k=300"


def _group_list(path, sizes):
    """A grouping file (``CLASS_ID GROUP`` lines; MOS's ImageNet list needs all 1000 classes)."""
    lines, cls = [], 0
    for group, n in enumerate(sizes):
        for _ in range(n):
            lines.append(f"{cls} g{group}")
            cls += 1
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_mos_group_and_flat_bit_finetunes(tmp_path, capsys):
    from oodlab.scores.mos import mos

    sizes = [3, 2]  # classes per group; the head has sum(n + 1) = 7 outputs
    state = official.bit_state(7)
    assert detect_format(state) == "mos_bit"
    with pytest.raises(ConfigError, match="groups"):
        load(tmp_path, {"model": official.bit_state(1008)}, num_classes=1000)
    groups = _group_list(tmp_path / "groups.txt", sizes)
    model, scores = load(tmp_path, {"step": 1, "model": state}, "--model-set",
                         f"groups={groups}", num_classes=5)  # fmt: skip
    check_norm(model, "bit")
    assert model.group_sizes == [4, 3]
    assert scores[0] == "mos"
    x = torch.rand(1, 3, 32, 32)
    expected = official.bit_logits(state, normalised(x, "bit"))
    got = logits_of(model, x)
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(mos(got, [4, 3]), mos(expected, [4, 3]), rtol=1e-3, atol=1e-3)
    flat = official.bit_state(5, seed=1)
    model, scores = load(tmp_path, {"model": flat}, num_classes=5, name="flat.pt")
    expected = official.bit_logits(flat, normalised(x, "bit"))
    torch.testing.assert_close(logits_of(model, x), expected, rtol=1e-3, atol=1e-3)


def test_npos_clip_tail_with_its_uncertainty_mlp_and_class_embeddings(tmp_path, capsys):
    """NPOS's ``CLIP_ft.state_dict()`` (ViT-B/16 shapes, 2 fine-tuned blocks = --num_layers 10)
    with the text embeddings in the official ``(512, C)`` orientation."""
    from oodlab.scores.mcm import mcm

    state = official.clip_tail_state(blocks=2)
    assert detect_format(state) == "npos_clip"
    text = F.normalize(torch.randn(6, 512, generator=torch.Generator().manual_seed(1)), dim=1)
    path = tmp_path / "text.pt"
    torch.save(text.T.contiguous(), path)
    with pytest.raises(ConfigError, match="class_embeddings=FILE"):
        load(tmp_path, state, num_classes=6)
    saved = {f"module.{k}": v for k, v in state.items()}  # nn.DataParallel
    model, scores = load(tmp_path, saved, "--model-set", f"class_embeddings={path}",
                         num_classes=6)  # fmt: skip
    out = capsys.readouterr().out
    assert "npos_clip (detected)" in out
    assert "2 fine-tuned blocks" in out
    check_norm(model, "none")
    assert scores[0] == "mcm"
    tokens = torch.randn(3, 197, 768, generator=torch.Generator().manual_seed(2))
    z = official.clip_tail_embedding(state, tokens)
    with torch.no_grad():
        torch.testing.assert_close(model.features(tokens), z, rtol=1e-4, atol=1e-4)
        logits = logits_of(model, tokens)
        phi = model.extra_outputs(model.features(tokens))["bin_logit"]
    # CLIP_ft.logits_compute: z / (norm of the whole batch) @ text; oodlab's: z @ text
    official_logits = (z / z.norm()) @ text.T
    torch.testing.assert_close(logits, official_logits * z.norm(), rtol=1e-4, atol=1e-4)
    hidden = F.relu(z @ state["outlier_MLP.0.weight"].T + state["outlier_MLP.0.bias"])
    expected_phi = (hidden @ state["outlier_MLP.2.weight"].T + state["outlier_MLP.2.bias"])[:, 0]
    torch.testing.assert_close(phi, expected_phi, rtol=1e-4, atol=1e-4)
    cosine = F.normalize(z, dim=1) @ text.T  # MCM: -max softmax(cos / T), per sample
    expected = -torch.softmax(cosine, dim=1).amax(dim=1)
    torch.testing.assert_close(mcm(model.features(tokens).detach(), text), expected)
    torch.save(torch.randn(6, 100), path)
    with pytest.raises(ConfigError, match="expected \\(classes, 512\\)"):
        load(tmp_path, state, "--model-set", f"class_embeddings={path}", num_classes=6)


def test_pascl_imood_patt_cifar_layouts(tmp_path, capsys):
    g = torch.Generator().manual_seed(5)
    body = official.kuangliu_state(10, classifier="linear")
    proj = {"projection.0.weight": torch.randn(512, 512, generator=g) / 20,
            "projection.0.bias": torch.randn(512, generator=g),
            "projection.2.weight": torch.randn(128, 512, generator=g) / 20,
            "projection.2.bias": torch.randn(128, generator=g)}  # fmt: skip
    x = torch.rand(2, 3, 32, 32)
    h = official.kuangliu_features(body, x)  # PASCL / ImOOD: no normalisation
    logits = h @ body["linear.weight"].T + body["linear.bias"]

    pascl = {f"module.{k}": v for k, v in (body | proj).items()}
    pascl["module.aux_linear.weight"] = torch.randn(10, 512, generator=g)
    pascl["module.aux_linear.bias"] = torch.randn(10, generator=g)
    assert detect_format(pascl) == "pascl"
    model, scores = load(tmp_path, {"model": pascl}, num_classes=10)
    check_norm(model, "none")
    torch.testing.assert_close(logits_of(model, x), logits, rtol=1e-4, atol=1e-4)

    imood = dict(body | proj)
    imood["linear.weight"] = torch.cat([body["linear.weight"], torch.randn(1, 512, generator=g)])
    imood["linear.bias"] = torch.cat([body["linear.bias"], torch.randn(1, generator=g)])
    imood |= {"lambda_linear.weight": torch.randn(10, 512, generator=g) / 20,
              "lambda_linear.bias": torch.zeros(10), "aux_linear.weight": torch.ones(1, 1),
              "aux_linear.bias": torch.zeros(1)}  # fmt: skip
    imood = {f"module.{k}": v for k, v in imood.items()}
    assert detect_format(imood) == "imood"
    model, scores = load(tmp_path, imood, num_classes=10, name="imood.pt")
    assert scores[0] == "bin_disc"
    with torch.no_grad():
        z = model.features(x)
        torch.testing.assert_close(model.head(z), logits, rtol=1e-4, atol=1e-4)
        g_logit = h @ imood["module.linear.weight"][10] + imood["module.linear.bias"][10]
        torch.testing.assert_close(model.extra_outputs(z)["bin_logit"], g_logit, rtol=1e-4,
                                   atol=1e-4)  # fmt: skip

    patt = dict(body) | {"finalScore": torch.linspace(0, 1, 512)}
    assert detect_format(patt) == "patt"
    model, scores = load(tmp_path, patt, num_classes=10, name="patt.pt")
    assert "finalScore" in capsys.readouterr().out
    check_norm(model, "cifar10_patt")
    h = official.kuangliu_features(body, normalised(x, "cifar10_patt"))
    torch.testing.assert_close(
        logits_of(model, x), h @ body["linear.weight"].T + body["linear.bias"],
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


def test_unknown_layout_names_the_nearest_format_and_the_first_unmatched_keys(tmp_path):
    state = official.kuangliu_state(10, classifier="fc")
    state["classifier2.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as info:
        load(tmp_path, state, num_classes=10)
    message = str(info.value)
    assert "nearest known format is 'openood_resnet18_32x32'" in message
    assert "classifier2.weight" in message
    assert "\n" not in message


def test_forced_format_that_does_not_fit_names_the_keys(tmp_path):
    state = official.kuangliu_state(10, classifier="fc")
    with pytest.raises(CheckpointError) as info:
        load(tmp_path, state, "--format", "torchvision_resnet", num_classes=10)
    assert "of another shape (conv1.weight" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="has no 'sigma' tensor"):
        load(tmp_path, {f"backbone.{k}": v for k, v in state.items()}, "--format", "ascood",
             num_classes=10)  # fmt: skip


def test_normalize_overrides_the_format_default_and_class_count_is_checked(tmp_path, capsys):
    state = official.kuangliu_state(10, classifier="fc")
    model, _ = load(tmp_path, state, "--normalize", "none", num_classes=10)
    assert input_normalization(model) is None
    with pytest.raises(CheckpointError, match="classifies 10 classes"):
        load(tmp_path, state, num_classes=100)


def test_every_format_is_tested_here():
    assert set(FORMATS.names()) == {
        "openood_resnet18_32x32", "torchvision_resnet", "ascood", "npos", "npos_clip", "mos_bit",
        "pascl", "imood", "patt",
    }  # fmt: skip
