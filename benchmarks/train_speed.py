"""Training-loop overhead: images/s of oodlab's loop vs a minimal hand-written PyTorch loop.

Both train the same model on the same in-memory random data (kept on the device) with the
same optimiser (Adam), batch size, augmentation (random crop, padding 4, and flip of the whole
batch on the device), precision and number of steps, after a warm-up; the hand-written loop is
the least a user would write. oodlab's rate is that of its second epoch, as its log reports
it (training steps only: the epoch-end evaluation and checkpoint are excluded, as the
hand-written loop has none); the two loops run interleaved ``--repeats`` times and the
medians are compared. Writes
``benchmarks/results/train_speed.json`` (target: oodlab ≥ 0.95× the hand-written rate).

Usage: ``python benchmarks/train_speed.py [--device cpu|cuda] [--steps N] [--repeats R] [--amp]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import oodlab
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.data import BENCHMARKS, Benchmark, TensorImageDataset
from oodlab.data.transforms import crop_flip
from oodlab.io import atomic_write_json
from oodlab.models import MODELS
from oodlab.train.loop import train
from oodlab.train.run import read_log

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"

# (model, options, input shape, batch size, measured steps per run on the CPU)
CASES = [
    ("small_cnn", {}, (1, 28, 28), 256, 30),
    ("resnet18_cifar", {}, (3, 32, 32), 64, 20),
]


def random_benchmark(n: int, shape: tuple[int, int, int], seed: int = 0) -> Benchmark:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    data = TensorImageDataset(images, torch.arange(n) % 10, name=f"random-{n}")
    return Benchmark("random", 10, shape, data, data, {}, class_counts=[n // 10] * 10)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_written(
    name: str, options: dict[str, Any], bench: Benchmark, batch: int, steps: int,
    device: torch.device, amp: bool, warmup: int = 3,
) -> float:  # fmt: skip
    """The minimal loop: shuffle, gather, crop + flip, forward, CE, backward, Adam step."""
    torch.manual_seed(0)
    model = MODELS.create(name, num_classes=10, in_channels=bench.image_shape[0], **options)
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    assert isinstance(bench.train, TensorImageDataset)
    images, labels = bench.train.images.to(device), bench.train.targets.to(device)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=generator)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        rows = order[(step * batch) % (len(images) - batch + 1) :][:batch].to(device)
        x = crop_flip(images[rows], 4, True, generator).float().div_(255)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def with_oodlab(
    name: str, options: dict[str, Any], bench: Benchmark, batch: int, steps: int,
    device: torch.device, amp: bool,
) -> float:  # fmt: skip
    """images/s of ``oodlab.train`` (method ``ce``) in its second epoch of ``steps`` steps
    (the first is the warm-up), as the run's ``train_log.jsonl`` reports it."""
    key = f"speed_{name}_{len(bench.train)}"  # type: ignore[arg-type]
    if key not in BENCHMARKS:
        BENCHMARKS.register(key)(lambda data_root=None, seed=0: bench)
    overrides = [
        f"data.benchmark={key}",
        f"data.batch_size={batch}",
        f"model.name={name}",
        "train.epochs=2",
        "train.eval_every=0",
        "train.quiet=true",
        f"train.device={device}",
        f"train.amp={str(amp).lower()}",
        "method.name=ce",
        *(f"model.options.{k}={v}" for k, v in options.items()),
    ]
    config = from_dict(RunConfig, apply_overrides({}, overrides))
    with tempfile.TemporaryDirectory() as tmp:
        train(config, Path(tmp) / "run")
        rows = [r for r in read_log(Path(tmp) / "run") if r["scope"] == "epoch"]
    if len(rows) != 2 or rows[-1]["step"] != 2 * steps:
        raise RuntimeError(f"expected 2 epochs of {steps} steps, the log has {rows}")
    return float(rows[-1]["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--steps", type=int, default=0, help="measured steps per run (0: per-case default)"
    )
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast in both loops")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per loop")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for name, options, shape, batch, cpu_steps in CASES:
        steps = args.steps or (cpu_steps if device.type == "cpu" else 100)
        bench = random_benchmark(batch * steps, shape)
        hand, ours = [], []
        for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
            hand.append(hand_written(name, options, bench, batch, steps, device, args.amp))
            ours.append(with_oodlab(name, options, bench, batch, steps, device, args.amp))
        reference, mine = statistics.median(hand), statistics.median(ours)
        rows.append(
            {
                "model": name,
                "input": list(shape),
                "batch_size": batch,
                "steps": steps,
                "repeats": args.repeats,
                "amp_bfloat16": args.amp,
                "hand_written_images_per_s": round(reference, 1),
                "oodlab_images_per_s": round(mine, 1),
                "ratio": round(mine / reference, 3),
                "target_ratio_at_least": 0.95,
                "hand_written_runs": [round(v, 1) for v in hand],
                "oodlab_runs": [round(v, 1) for v in ours],
            }
        )
        print(rows[-1], flush=True)
    report = {
        "oodlab_version": oodlab.__version__,
        "torch": torch.__version__,
        "device": args.device if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "note": "oodlab images/s: training steps only (evaluation, checkpoints excluded)",
        "results": rows,
    }
    atomic_write_json(RESULTS, report)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
