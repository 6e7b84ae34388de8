"""Training-data throughput: a torchvision DataLoader vs oodlab's on-device uint8 batches.

CIFAR-shaped data (50,000 random uint8 images of 3×32×32, generated here), batch 256, two
augmentation recipes:

* ``crop_flip``: random crop with 4-pixel padding, horizontal flip, scale to [0, 1];
* ``pascl_two_views``: PASCL's two views (crop, flip, ColorJitter(0.4, 0.4, 0.4, 0.1) with
  p = 0.8, grayscale p = 0.2). The device path uses ColorJitterLite (no hue).

Paths:

* ``dataloader``: :class:`oodlab.data.loaders.EpochLoader` (a ``DataLoader`` with a seeded
  sampler) over a dataset applying ``torchvision.transforms.v2`` per image, ``--workers``
  worker processes;
* ``device``: :class:`oodlab.data.loaders.DeviceBatchLoader`, which keeps the whole set as
  one uint8 tensor on ``--device`` and augments each batch with a few vectorised operations.

Writes ``benchmarks/results/data_throughput.json`` and prints it (target on the CPU: the
device path ≥ 3× the DataLoader at batch 256).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

import oodlab
from oodlab.data import TensorImageDataset
from oodlab.data.loaders import DeviceBatchLoader, EpochLoader
from oodlab.data.transforms import ColorJitterLite, crop_flip_train, pascl_views
from oodlab.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "data_throughput.json"


def images_per_second(batches: Iterable[Any], num_batches: int, batch_size: int) -> float:
    """Images per second over ``num_batches`` batches, after one warm-up batch."""
    iterator = iter(batches)
    next(iterator)  # start-up (worker processes, first batch) is not counted
    start = time.perf_counter()
    for _ in range(num_batches):
        x, _y = next(iterator)
        for view in x if isinstance(x, (tuple, list)) else [x]:
            view.sum().item()  # make sure the batch is materialised
    return num_batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50000, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.arange(50000) % 10
    device = torch.device(args.device)
    batch = args.batch_size
    recipes = {
        "crop_flip": (crop_flip_train(32, 4), {}),
        "pascl_two_views": (pascl_views(32), {"views": 2, "color_jitter": ColorJitterLite()}),
    }
    results: dict[str, dict[str, float]] = {}
    for name, (transform, device_options) in recipes.items():
        loader = EpochLoader(
            TensorImageDataset(images, labels, transform=transform),
            batch,
            seed=0,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )
        cpu_rate = images_per_second(loader, args.batches, batch)
        on_device = DeviceBatchLoader(
            images, labels, batch, device, crop_padding=4, flip=True, generator=0,
            **device_options,
        )  # fmt: skip
        device_rate = images_per_second(on_device, args.batches, batch)
        results[name] = {
            "dataloader_images_per_s": round(cpu_rate, 1),
            "device_images_per_s": round(device_rate, 1),
            "speedup": round(device_rate / cpu_rate, 2),
        }
    report = {
        "oodlab_version": oodlab.__version__,
        "torch": torch.__version__,
        "device": args.device if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "batch_size": batch,
        "dataloader_workers": args.workers,
        "batches_timed": args.batches,
        "results": results,
        # Kept at the top level for the README table (crop + flip recipe).
        "dataloader_images_per_s": results["crop_flip"]["dataloader_images_per_s"],
        "device_batches_images_per_s": results["crop_flip"]["device_images_per_s"],
        "speedup": results["crop_flip"]["speedup"],
        "target_speedup_at_least": 3.0,
    }
    atomic_write_json(RESULTS, report)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
