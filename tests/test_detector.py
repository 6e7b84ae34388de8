"""oodlab.Detector: fit, calibrate, score, predict, save and load in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import oodlab
from oodlab.errors import CheckpointError, ConfigError, NotFittedError
from oodlab.scores import SCORES

# Built the same way here and in the subprocess (weights come from the saved state dict).
MODEL_CODE = textwrap.dedent(
    """
    import torch
    from oodlab.models import attach_heads
    from oodlab.models.small_cnn import SmallCNN

    def build_model():
        torch.manual_seed(0)
        backbone = SmallCNN(num_classes=4, in_channels=1, width=0.25, norm="none")
        return attach_heads(backbone, 4, heads={"bin_logit": {}}).eval()
    """
)
REQUIRED: dict[str, dict[str, Any]] = {"mos": {"group_sizes": [2, 2]}, "knn": {"k": 5}}
NAMES = SCORES.names()


def build_model() -> torch.nn.Module:
    namespace: dict[str, Any] = {}
    exec(MODEL_CODE, namespace)
    return namespace["build_model"]()


def images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) + shift


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    x_train = images(48, 0)
    y_train = torch.arange(48) % 4
    return {
        "train": TensorDataset(x_train, y_train),
        "aux": TensorDataset(images(24, 1, 2.0), torch.full((24,), -1)),
        "val": images(40, 2),
        "test": torch.cat([images(10, 3), images(10, 4, 3.0)]),
    }


def test_every_score_survives_save_and_load_in_a_fresh_process(data, tmp_path):
    model = build_model()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    expected = {}
    for name in NAMES:
        detector = oodlab.Detector(model, name, batch_size=16, **REQUIRED.get(name, {}))
        detector.fit(data["train"], aux=data["aux"]).calibrate(data["val"])
        prediction = detector.predict(data["test"])
        assert torch.isfinite(prediction.scores).all(), name
        detector.save(tmp_path / f"{name}.safetensors")
        expected[name] = {
            "scores": prediction.scores.tolist(),
            "is_ood": prediction.is_ood.tolist(),
            "classes": prediction.classes.tolist(),
        }
    torch.save(data["test"], tmp_path / "test.pt")
    script = MODEL_CODE + textwrap.dedent(
        f"""
        import json, pickle, sys
        import oodlab
        folder = {str(tmp_path)!r}
        model = build_model()
        model.load_state_dict(torch.load(folder + "/model.pt", weights_only=True))
        x = torch.load(folder + "/test.pt", weights_only=True)

        def refuse(*args, **kwargs):
            raise AssertionError("a detector file was unpickled")

        pickle.load = pickle.loads = refuse
        pickle.Unpickler = refuse
        out = {{}}
        for name in {NAMES!r}:
            detector = oodlab.Detector.load(folder + "/" + name + ".safetensors", model)
            p = detector.predict(x)
            out[name] = {{"scores": p.scores.tolist(), "is_ood": p.is_ood.tolist(),
                          "classes": p.classes.tolist()}}
        json.dump(out, sys.stdout)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    for name in NAMES:
        assert loaded[name]["is_ood"] == expected[name]["is_ood"], name
        assert loaded[name]["classes"] == expected[name]["classes"], name
        torch.testing.assert_close(
            torch.tensor(loaded[name]["scores"]),
            torch.tensor(expected[name]["scores"]),
            rtol=1e-5,
            atol=1e-6,
            msg=name,
        )


@pytest.mark.parametrize("n", [40, 57, 200])
def test_calibrate_accepts_the_requested_share_of_id(n, data):
    model = build_model()
    detector = oodlab.Detector(model, "energy").fit(data["train"])
    held_out = images(n, 7)
    threshold = detector.calibrate(held_out, tpr=0.95)
    accepted = int((detector.score_data(held_out) <= threshold).sum())
    assert abs(accepted - 0.95 * n) <= 1
    assert int((~detector.predict(held_out).is_ood).sum()) == accepted


def test_scores_match_a_hand_computed_energy_and_classes_the_argmax(data):
    model = build_model()
    detector = oodlab.Detector(model, "energy").fit(data["train"])
    x = data["test"]
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(detector(x), -torch.logsumexp(logits, 1))
    detector.calibrate(data["val"])
    assert detector.predict(x).classes.tolist() == logits.argmax(1).tolist()


def test_inputs_may_be_a_dataloader_a_pair_or_images(data):
    model = build_model()
    x, y = data["train"].tensors
    by_loader = oodlab.Detector(model, "mahalanobis").fit(DataLoader(data["train"], batch_size=7))
    by_pair = oodlab.Detector(model, "mahalanobis").fit((x, y))
    torch.testing.assert_close(by_loader(data["test"]), by_pair(data["test"]))
    by_images = oodlab.Detector(model, "knn", k=3).fit(x)  # no labels needed
    by_dataset = oodlab.Detector(model, "knn", k=3).fit(data["train"])
    torch.testing.assert_close(by_images(data["test"]), by_dataset(data["test"]))


def test_errors_say_what_to_do(data, tmp_path):
    model = build_model()
    with pytest.raises(NotFittedError, match="fit"):
        oodlab.Detector(model, "knn")(data["test"])
    detector = oodlab.Detector(model, "msp").fit(data["train"])
    with pytest.raises(NotFittedError, match="calibrate"):
        detector.predict(data["test"])
    with pytest.raises(ConfigError, match="tpr"):
        detector.calibrate(data["val"], tpr=1.5)
    path = detector.save(tmp_path / "msp.safetensors")
    other = build_model()
    with torch.no_grad():
        other.backbone.linear.bias.add_(1.0)  # type: ignore[union-attr]
    with pytest.raises(CheckpointError, match="same weights"):
        oodlab.Detector.load(path, other)
    (tmp_path / "junk.safetensors").write_bytes(b"not a detector")
    with pytest.raises(CheckpointError, match="not a detector"):
        oodlab.Detector.load(tmp_path / "junk.safetensors", model)


def test_saved_file_is_readable_by_plain_safetensors(data, tmp_path):
    from safetensors import safe_open

    detector = oodlab.Detector(build_model(), "knn", k=3).fit(data["train"])
    path = Path(detector.save(tmp_path / "knn.safetensors"))
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
        meta = json.loads(handle.metadata()["oodlab"])
    assert keys == {"state.bank_"}
    assert meta["score"] == "knn"
    assert meta["params"]["k"] == 3
    assert meta["state"] == {"k_": 3}


def test_odin_on_a_self_normalising_model_steps_in_pixel_units(data, tmp_path):
    """The model normalises inside and the detector feeds it pixels, so ODIN's step is not
    divided by the model's std (that would apply it twice; OpenOOD's step on normalised
    inputs divided by the std is the same pixel step, tests/scores/test_odin.py)."""
    from oodlab.models import attach_heads
    from oodlab.models.small_cnn import SmallCNN
    from oodlab.scores.odin import odin

    backbone = SmallCNN(num_classes=4, in_channels=1, width=0.25, norm="none")
    model = attach_heads(backbone, 4, mean=[0.5], std=[0.25]).eval()
    detector = oodlab.Detector(model, "odin").fit(data["train"])
    assert detector.score.input_std is None
    assert detector.normalization == oodlab.detector.Normalization((0.5,), (0.25,))
    x = data["test"][:8]
    torch.testing.assert_close(detector(x), odin(model, x, 1000.0, 0.0014))
    detector.calibrate(data["val"])
    loaded = oodlab.Detector.load(detector.save(tmp_path / "odin.safetensors"), model)
    assert loaded.score.input_std is None
    torch.testing.assert_close(loaded(data["test"]), detector(data["test"]))


def test_a_group_softmax_model_gives_mos_its_groups_and_its_class_ids(toy):
    # The model's groups are read in one place (oodlab.eval.needs.model_groups), as evaluate does.
    model = toy.model
    model.group_sizes = [2, 2]  # two groups of one class + "others" over the 4 logits
    model.register_buffer("group_class_ids", torch.tensor([1, 0]))  # flat index -> class id
    detector = oodlab.Detector(model, "mos", device="cpu")
    assert detector.score.get_params() == {"group_sizes": (2, 2)}
    detector.fit((toy.x_train, toy.y_train)).calibrate(toy.x_id)
    with torch.no_grad():
        logits = model(toy.x_id)
    # By hand: per group, the softmax probability of its one class (index 1 after "others");
    # the group with the larger one wins, and its flat index maps through group_class_ids.
    best = torch.stack([logits[:, :2].softmax(1)[:, 1], logits[:, 2:].softmax(1)[:, 1]], 1)
    expected = torch.tensor([1, 0])[best.argmax(1)]
    assert torch.equal(detector.predict(toy.x_id).classes, expected)
