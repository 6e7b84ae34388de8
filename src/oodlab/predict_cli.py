"""``oodlab predict RUN_OR_DETECTOR IMAGES...``: class, OOD score and OOD flag per image file.

``RUN_OR_DETECTOR`` is a detector file written by :meth:`oodlab.Detector.save` (its model
comes from the run folder recorded in it, or ``--run``), or a run folder of ``oodlab train``:
then the detector ``RUN/detector_<score>.safetensors`` is loaded, or, the first time, fitted
on the run's training set, calibrated on its ID test set at ``--tpr`` and saved there.
``IMAGES`` are image files or folders (searched recursively, sorted). Each image is read as
the model's channels (grayscale or RGB), resized to its input size and scaled to ``[0, 1]``
(oodlab models normalise inside). The CSV (``path,class,score,is_ood``; higher score = more
OOD) goes to standard output or ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def add_predict_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files and flag the OOD ones (a run folder or a detector file)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("target", type=Path, help="run folder, or a detector file (.safetensors)")
    p.add_argument("images", type=Path, nargs="+", help="image files or folders of images")
    p.add_argument("--score", help="score of the detector fitted on a run (default: the run's own)")
    p.add_argument("--tpr", type=float, default=0.95, help="share of ID images to accept")
    p.add_argument("--run", type=Path, help="run folder of a detector file's model")
    p.add_argument("--data-root", type=Path, help="folder holding the run's datasets (to fit)")
    p.add_argument("--out", type=Path, help="write the CSV here instead of standard output")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda:N")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from oodlab.io import atomic_write_text

    detector = _detector(args)
    files = image_files(args.images)
    shape = detector.input_shape
    if shape is None or len(shape) != 3:
        raise DataError("the detector does not record its input shape (C, H, W); refit it")
    rows = []
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        x = torch.stack([read_image(f, shape) for f in chunk])
        classes, is_ood, scores = detector.predict(x)
        rows += [
            (str(f), int(c), float(s), bool(o))
            for f, c, s, o in zip(chunk, classes, scores, is_ood)
        ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "class", "score", "is_ood"])
    writer.writerows((p, c, f"{s:.6g}", int(o)) for p, c, s, o in rows)
    if args.out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        atomic_write_text(args.out, buffer.getvalue())
        flagged = sum(r[3] for r in rows)
        print(f"{len(rows)} images, {flagged} flagged OOD; CSV: {args.out}")
    return 0


def _detector(args: argparse.Namespace) -> Any:
    from oodlab.detector import Detector, read_detector_file
    from oodlab.train.run import load_model_from_run

    if args.target.is_file():
        _, meta = read_detector_file(args.target)
        run = args.run or (Path(meta["run"]) if meta.get("run") else None)
        if run is None:
            raise ConfigError(
                f"{args.target} does not say which run its model comes from; pass --run RUN_DIR"
            )
        return Detector.load(args.target, load_model_from_run(run), device=args.device)
    if not args.target.is_dir():
        raise ConfigError(f"{args.target} is neither a run folder nor a detector file")
    return _run_detector(args, Detector, load_model_from_run(args.target))


def _run_detector(args: argparse.Namespace, detector_cls: Any, model: Any) -> Any:
    from oodlab.data import build_benchmark
    from oodlab.scores import SCORES
    from oodlab.train.run import default_scores_of_run, load_run_config

    config = load_run_config(args.target)
    score = args.score or default_scores_of_run(config)[0]
    path = args.target / f"detector_{score}.safetensors"
    if path.is_file():
        detector = detector_cls.load(path, model, device=args.device)
        if args.tpr == detector.tpr:
            return detector
    data = config.data
    benchmark = build_benchmark(
        data.benchmark, args.data_root or data.data_root, seed=data.seed, **data.options
    )
    detector = detector_cls(model, score, batch_size=args.batch_size, device=args.device)
    uses_aux = "aux" in SCORES.get(detector.name).needs
    detector.fit(benchmark.train, aux=benchmark.aux if uses_aux else None)
    detector.calibrate(benchmark.test, tpr=args.tpr)
    spec = json.loads((args.target / "model.json").read_text())
    detector.input_shape = tuple(spec.get("image_shape") or benchmark.image_shape)
    detector.save(path, run=args.target)
    print(
        f"fitted {score} on {len(benchmark.train)} training images, threshold at "  # type: ignore[arg-type]
        f"{100 * args.tpr:g}% of {len(benchmark.test)} ID test images; saved {path}",  # type: ignore[arg-type]
        file=sys.stderr,
    )
    return detector


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The image files among ``paths`` (folders searched recursively), sorted per argument."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
            if not found:
                raise DataError(f"folder {path} holds no image files ({', '.join(SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"image {path} does not exist; pass image files or folders")
    return files


def read_image(path: Path, shape: Sequence[int]) -> Tensor:
    """``path`` as a ``(C, H, W)`` float tensor in ``[0, 1]`` of the model's channels and size."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as F

    channels, height, width = (int(s) for s in shape)
    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        tensor = F.pil_to_tensor(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    return tensor.float() / 255.0
