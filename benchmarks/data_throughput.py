"""Training-data throughput: torchvision DataLoader vs oodlab's on-device uint8 batches.

CIFAR-shaped data (50,000 random uint8 images of 3×32×32, generated here), batch 256, the
PASCL geometric augmentation (random crop with 4-pixel padding, horizontal flip) and the
conversion to float in [0, 1]:

* ``dataloader``: a ``torch.utils.data.DataLoader`` over a dataset applying
  ``torchvision.transforms.v2`` per image, with ``--workers`` worker processes;
* ``device_batches``: :class:`oodlab.train.batches.DeviceBatches`, which keeps the whole set as
  one uint8 tensor on the device and augments each batch with a few vectorised operations.

Writes ``benchmarks/results/data_throughput.json`` (target on the CPU: device path ≥ 3×).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import oodlab
from oodlab.io import atomic_write_json
from oodlab.train.batches import DeviceBatches

RESULTS = Path(__file__).resolve().parent / "results" / "data_throughput.json"


class UInt8Images(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def images_per_second(batches: object, num_batches: int, batch_size: int) -> float:
    iterator = iter(batches)  # type: ignore[call-overload]
    next(iterator)  # start-up (worker processes, first batch) is not counted
    start = time.perf_counter()
    for _ in range(num_batches):
        x, _y = next(iterator)
        x.sum().item()  # make sure the batch is materialised
    return num_batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50000, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.arange(50000) % 10
    batch = 256
    transform = v2.Compose(
        [
            v2.RandomCrop(32, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    loader = DataLoader(
        UInt8Images(images, labels, transform),
        batch_size=batch,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=args.workers > 0,
    )
    cpu_rate = images_per_second(loader, args.batches, batch)
    device = torch.device(args.device)
    device_batches = DeviceBatches(images, labels, batch, device, padding=4, flip=True)
    device_rate = images_per_second(device_batches.epoch(seed=0, epoch=0), args.batches, batch)
    report = {
        "oodlab_version": oodlab.__version__,
        "torch": torch.__version__,
        "device": args.device if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "batch_size": batch,
        "dataloader_workers": args.workers,
        "dataloader_images_per_s": cpu_rate,
        "device_batches_images_per_s": device_rate,
        "speedup": device_rate / cpu_rate,
        "target_speedup_at_least": 3.0,
    }
    atomic_write_json(RESULTS, report)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
