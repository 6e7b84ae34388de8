"""A deployable OOD detector: a model plus one fitted score plus a calibrated threshold.

::

    detector = oodlab.Detector(model, "knn", k=50).fit(train_set)   # Dataset, DataLoader, tensors
    detector.calibrate(id_val_set, tpr=0.95)     # threshold accepting 95% of ID images
    scores = detector(x)                         # (N,), higher = more OOD
    classes, is_ood, scores = detector.predict(x)
    detector.save("knn.safetensors"); oodlab.Detector.load("knn.safetensors", model)

Every registered post-hoc score works, including those that re-run the network with input
gradients (ODIN, i-ODIN, ``mahalanobis_ensemble``). A saved detector is one safetensors file:
the score's fitted state as tensors (:meth:`oodlab.scores.Score.state_dict`) and plain JSON
metadata (score name, hyper-parameters, threshold, input shape and normalisation, the
model's fingerprint). Loading never unpickles; what is derived (KNN's faiss index) is
rebuilt from the tensors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from oodlab._version import __version__
from oodlab.errors import CheckpointError, ConfigError, DataError, NotFittedError
from oodlab.eval.extract import _eval_mode, _Forward, model_fingerprint, resolve_device
from oodlab.eval.needs import model_groups, needs_of
from oodlab.io import atomic_write_bytes
from oodlab.scores import SCORES, InputGradientScore, Score
from oodlab.scores._state import plain_params
from oodlab.scores.base import score_name
from oodlab.types import Outputs

FORMAT = "oodlab-detector/1"
Data = Dataset[Any] | DataLoader[Any] | Tensor | tuple[Tensor, Tensor]


class Prediction(NamedTuple):
    """What :meth:`Detector.predict` returns for a batch of ``N`` images."""

    classes: Tensor  # (N,) predicted ID class
    is_ood: Tensor  # (N,) bool, score > threshold
    scores: Tensor  # (N,) higher = more OOD


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x − mean) / std`` applied to images before the model (``None``: none)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


class Detector:
    """``model`` + one post-hoc ``score``: fit, calibrate a threshold, score, save and load.

    Args:
        model: the classifier (oodlab's ``features``/``head`` protocol or any module whose
            last ``nn.Linear`` is the classifier).
        score: a registered score name (``oodlab list scores``) or a :class:`Score` instance.
        batch_size: images per forward pass when a whole dataset is scored.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        normalization: the per-channel ``(mean, std)`` the model applies to its inputs.
            Default: :func:`oodlab.models.input_normalization` (oodlab models take images in
            ``[0, 1]`` and normalise inside); the file records it. Images given to the
            detector are always what the model itself takes: pixels, so ODIN / i-ODIN's
            undivided step is already OpenOOD's (which divides a step on *normalised* inputs
            by the std; :func:`oodlab.scores.odin.odin`, "Units of ε").
        **params: the score's hyper-parameters (only with a score name).
    """

    def __init__(
        self,
        model: nn.Module,
        score: str | Score = "energy",
        *,
        batch_size: int = 256,
        device: str = "auto",
        normalization: Normalization | tuple[Sequence[float], Sequence[float]] | None = None,
        **params: Any,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.normalization = _normalization(model, normalization)
        if isinstance(score, Score):
            if params:
                raise ConfigError("pass hyper-parameters to the Score object, not to Detector")
            self.score = score
        else:
            self.score = SCORES.create(score, **self._model_params(score, params))
        self.name = score_name(self.score)
        self.threshold: float | None = None
        self.tpr: float | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.fitted = not SCORES.get(self.name).requires_fit if self.name in SCORES else False
        self._forward = _Forward(model)

    def _model_params(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Hyper-parameters that describe the model, filled in from it (as ``evaluate`` does)."""
        names = SCORES.get(name).factory.param_names()  # type: ignore[attr-defined]
        filled = dict(params)
        groups = model_groups(self.model)  # the one place a model's groups are read
        if "group_sizes" in names and groups is not None:
            filled.setdefault("group_sizes", groups[0])
        return filled

    # -- fitting -----------------------------------------------------------------------
    def fit(self, train: Data, aux: Data | None = None) -> Detector:
        """Fit the score on ID training images (and auxiliary outliers, for ``patt_energy``).

        ``train`` is a Dataset or DataLoader of ``(image, label)``, a ``(images, labels)``
        pair of tensors, or an images tensor (labels are then the model's own predictions).
        Scores that need no fitting only record the input shape.
        """
        entry = SCORES.get(self.name) if self.name in SCORES else None
        if "train_inputs" in needs_of(self.name, self.score):  # e.g. mahalanobis_ensemble
            self.model.to(self.device)
            self.score.fit_inputs(self.model, self._labelled(train))  # type: ignore[attr-defined]
        elif entry is None or entry.requires_fit:
            train_out = self._outputs(train)
            aux_out = self._outputs(aux) if aux is not None else None
            self.score.fit(train_out, aux=aux_out)
        else:
            self._record_shape(next(iter(self._batches(train)))[0])
        self.fitted = True
        return self

    def calibrate(self, id_val: Data, tpr: float = 0.95) -> float:
        """Set the threshold that accepts the fraction ``tpr`` of the ID images ``id_val``.

        The threshold is the ``⌈tpr·N⌉``-th smallest score (``round`` to the nearest sample
        when that is exact), so exactly that many of the ``N`` images score ``<= threshold``
        (ties aside); ``predict`` flags ``score > threshold``. Returns the threshold.
        """
        if isinstance(tpr, bool) or not isinstance(tpr, int | float) or not 0 < tpr <= 1:
            raise ConfigError(f"tpr must be in (0, 1], the fraction of ID accepted; got {tpr!r}")
        scores = self.score_data(id_val)
        k = min(len(scores), max(1, math.ceil(tpr * len(scores) - 1e-9)))
        self.threshold = float(scores.double().kthvalue(k).values)
        self.tpr = float(tpr)
        return self.threshold

    # -- scoring -----------------------------------------------------------------------
    def __call__(self, x: Tensor) -> Tensor:
        """OOD scores ``(N,)`` of one batch of images, higher = more OOD."""
        return self._score_batch(x)[1]

    def predict(self, x: Tensor) -> Prediction:
        """Predicted class, OOD flag (``score > threshold``) and score of one batch."""
        if self.threshold is None:
            raise NotFittedError("the detector has no threshold; call .calibrate(id_val) first")
        classes, scores = self._score_batch(x)
        return Prediction(classes, scores > self.threshold, scores)

    def score_data(self, data: Data) -> Tensor:
        """OOD scores ``(N,)`` of a whole Dataset, DataLoader or tensor of images."""
        parts = [self._score_batch(x)[1] for x, _ in self._batches(data)]
        if not parts:
            raise DataError("no images to score: the dataset is empty")
        return torch.cat(parts)

    def _score_batch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.ndim < 2:
            raise DataError(f"expected a batch of images (N, C, H, W), got {_describe(x)}")
        if not self.fitted:
            raise NotFittedError(f"detector {self.name!r} is not fitted; call .fit(train) first")
        self.model.to(self.device)
        x = x.to(self.device)
        with _eval_mode(self.model):
            with torch.inference_mode():
                out = self._outputs_of_batch(x)
            classes = _classes(out.logits, self.model)
            if isinstance(self.score, InputGradientScore):
                scores = self.score.score_inputs(self.model, x.clone())
            else:
                scores = self.score.score(out)
        return classes.cpu(), scores.detach().float().cpu()

    # -- helpers -------------------------------------------------------------------------
    def _outputs_of_batch(self, x: Tensor, y: Tensor | None = None) -> Outputs:
        logits, features, extras = self._forward(x)
        layer = self._forward.linear
        labels = torch.full((len(x),), -1, dtype=torch.long) if y is None else y.long().cpu()
        return Outputs(
            logits=logits.float().cpu(),
            features=features.float().cpu(),
            labels=labels,
            extras={k: v.float().cpu() for k, v in extras.items()},
            head_weight=None if layer is None else layer.weight.detach().float().cpu(),
            head_bias=None
            if layer is None or layer.bias is None
            else layer.bias.detach().float().cpu(),
        )

    def _outputs(self, data: Data) -> Outputs:
        self.model.to(self.device)
        parts = []
        with _eval_mode(self.model), torch.inference_mode():
            for x, y in self._labelled(data):
                parts.append(self._outputs_of_batch(x.to(self.device), y))
        if not parts:
            raise DataError("no images to fit on: the dataset is empty")
        return Outputs.concat(parts)

    def _labelled(self, data: Data) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self._batches(data):
            self._record_shape(x)
            if y is None:  # unlabelled images: the model's own predictions
                with _eval_mode(self.model), torch.inference_mode():
                    y = _classes(self._forward(x.to(self.device))[0], self.model).cpu()
            yield x, y

    def _batches(self, data: Data) -> Iterator[tuple[Tensor, Tensor | None]]:
        if isinstance(data, Tensor):
            yield from ((x, None) for x in data.split(self.batch_size))
            return
        if isinstance(data, tuple | list):
            if len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
                raise DataError("tensor data must be images or an (images, labels) pair")
            data = TensorDataset(*data)
        if isinstance(data, Dataset):
            data = DataLoader(data, batch_size=self.batch_size, shuffle=False)
        if not isinstance(data, DataLoader):
            raise DataError(
                f"expected a Dataset, DataLoader, images tensor or (images, labels), "
                f"got {type(data).__name__}"
            )
        for batch in data:
            if isinstance(batch, Tensor):
                yield batch, None
            else:
                yield batch[0], torch.as_tensor(batch[1])

    def _record_shape(self, x: Tensor) -> None:
        self.input_shape = tuple(int(s) for s in x.shape[1:])

    # -- saving --------------------------------------------------------------------------
    def save(self, path: str | Path, *, run: str | Path | None = None) -> Path:
        """Write the detector as one safetensors file (tensors + JSON metadata; no pickle).

        ``run`` records the run folder whose model this is, so ``oodlab predict FILE``
        finds the model without being told.
        """
        from safetensors.torch import save

        if not self.fitted:
            raise NotFittedError("fit the detector before saving it")
        params, param_tensors = plain_params(self.score)
        state = self.score.state_dict()
        tensors = {f"param.{k}": v.clone() for k, v in param_tensors.items()}
        tensors.update({f"state.{k}": v.clone() for k, v in state.items() if isinstance(v, Tensor)})
        meta = {
            "format": FORMAT,
            "oodlab_version": __version__,
            "score": self.name,
            "params": params,
            "state": {k: v for k, v in state.items() if not isinstance(v, Tensor)},
            "threshold": self.threshold,
            "tpr": self.tpr,
            "input_shape": self.input_shape,
            "normalization": None
            if self.normalization is None
            else {"mean": self.normalization.mean, "std": self.normalization.std},
            "model": model_fingerprint(self.model),
            "run": None if run is None else str(Path(run).resolve()),
        }
        data = save(tensors, metadata={"oodlab": json.dumps(meta)})
        return atomic_write_bytes(path, data)

    @classmethod
    def load(
        cls, path: str | Path, model: nn.Module, *, device: str = "auto", strict: bool = True
    ) -> Detector:
        """A detector saved by :meth:`save`, on ``model`` (the same weights unless not strict)."""
        tensors, meta = read_detector_file(path)
        if strict and meta["model"] != model_fingerprint(model):
            raise CheckpointError(
                f"{path} was fitted on model {meta['model']}, not on this one "
                f"({model_fingerprint(model)}); pass the same weights, or strict=False"
            )
        params = dict(meta["params"])
        params.update({k[6:]: v for k, v in tensors.items() if k.startswith("param.")})
        norm = meta.get("normalization")
        detector = cls(
            model,
            SCORES.create(meta["score"], **params),
            device=device,
            normalization=None if norm is None else (norm["mean"], norm["std"]),
        )
        state: dict[str, Any] = dict(meta["state"])
        state.update({k[6:]: v for k, v in tensors.items() if k.startswith("state.")})
        detector.score.load_state_dict(state)
        detector.threshold, detector.tpr = meta["threshold"], meta["tpr"]
        shape = meta.get("input_shape")
        detector.input_shape = None if shape is None else tuple(shape)
        detector.fitted = True
        return detector

    def __repr__(self) -> str:
        threshold = "uncalibrated" if self.threshold is None else f"threshold={self.threshold:.4g}"
        return f"Detector({self.score!r}, {threshold}, tpr={self.tpr})"


def read_detector_file(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and the metadata of a detector file; a file of another kind raises one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"detector file {path} does not exist")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get("oodlab", "{}"))
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a detector file (safetensors): {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an oodlab detector (saved by Detector.save)")
    return tensors, meta


def _normalization(
    model: nn.Module, given: Normalization | tuple[Sequence[float], Sequence[float]] | None
) -> Normalization | None:
    if isinstance(given, Normalization):
        return given
    if given is None:
        from oodlab.models import input_normalization

        found = input_normalization(model)
        if found is None:
            return None
        mean_t, std_t = found
        return Normalization(tuple(map(float, mean_t)), tuple(map(float, std_t)))
    mean, std = given
    if len(mean) != len(std) or not len(mean) or any(float(s) <= 0 for s in std):
        raise ConfigError(
            f"normalization must be (mean, std) with one positive std per channel, got {given!r}"
        )
    return Normalization(tuple(float(m) for m in mean), tuple(float(s) for s in std))


def _classes(logits: Tensor, model: nn.Module) -> Tensor:
    """Predicted classes; a group-softmax model (MOS) predicts with its group-aware rule."""
    groups = model_groups(model)
    if groups is not None and groups[1] is not None:
        from oodlab.scores.mos import mos_predict

        return groups[1].to(logits.device)[mos_predict(logits, groups[0])]
    return logits.argmax(1)


def _describe(x: Any) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
