"""Training-loop overhead: images/s of oodlab's loop vs a minimal hand-written PyTorch loop.

Both train the same model on the same in-memory data with the same optimiser, batch size,
augmentation (random crop + flip on the device) and number of steps; the hand-written loop
is the least a user would write. Writes ``benchmarks/results/train_speed.json``
(target: oodlab ≥ 0.95× the hand-written loop's images/s).

Usage: ``python benchmarks/train_speed.py [--device cpu|cuda] [--steps N]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch

import oodlab
from oodlab.config import RunConfig, apply_overrides, from_dict
from oodlab.data import BENCHMARKS, Benchmark, TensorImageDataset
from oodlab.io import atomic_write_json
from oodlab.models import MODELS
from oodlab.train.batches import crop_flip
from oodlab.train.loop import train

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"


def random_benchmark(n: int, shape: tuple[int, int, int], seed: int = 0) -> Benchmark:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    data = TensorImageDataset(images, labels, name=f"random-{n}")
    return Benchmark(
        name="random",
        num_classes=10,
        image_shape=shape,
        train=data,
        test=data,
        ood={},
        class_counts=[n // 10] * 10,
    )


def hand_written(
    model_name: str,
    options: dict[str, Any],
    bench: Benchmark,
    batch: int,
    steps: int,
    device: torch.device,
) -> float:
    """The minimal loop: shuffle, gather, crop+flip, forward, CE, backward, Adam step."""
    torch.manual_seed(0)
    model = MODELS.create(
        model_name, num_classes=10, in_channels=bench.image_shape[0], **options
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    assert isinstance(bench.train, TensorImageDataset)
    images, labels = bench.train.images.to(device), bench.train.targets.to(device)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=generator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(steps):
        rows = order[(step * batch) % (len(images) - batch + 1) :][:batch].to(device)
        x = crop_flip(images[rows], 4, True, generator).float().div_(255)
        loss = torch.nn.functional.cross_entropy(model(x), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def with_oodlab(
    model_name: str,
    options: dict[str, Any],
    bench: Benchmark,
    batch: int,
    steps: int,
    device: torch.device,
    run_dir: Path,
) -> float:
    name = f"speed_{model_name}_{len(bench.train)}"  # type: ignore[arg-type]
    if name not in BENCHMARKS:
        BENCHMARKS.register(name)(lambda data_root=None, seed=0: bench)
    epochs = max(1, steps * batch // len(bench.train))  # type: ignore[arg-type]
    config = from_dict(
        RunConfig,
        apply_overrides(
            {},
            [
                f"data.benchmark={name}",
                f"data.batch_size={batch}",
                f"model.name={model_name}",
                f"train.epochs={epochs}",
                "train.eval_every=0",
                "train.quiet=true",
                f"train.device={device}",
                "method.name=ce",
            ]
            + [f"model.options.{k}={v}" for k, v in options.items()],
        ),
    )
    result = train(config, run_dir)
    return result.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    device = torch.device(args.device)
    import tempfile

    cases = [("small_cnn", {}, (1, 28, 28), 256), ("resnet18_cifar", {}, (3, 32, 32), 128)]
    rows = []
    for model_name, options, shape, batch in cases:
        bench = random_benchmark(batch * args.steps, shape)
        hand_written(model_name, options, bench, batch, 3, device)  # warm-up
        reference = hand_written(model_name, options, bench, batch, args.steps, device)
        with tempfile.TemporaryDirectory() as tmp:
            ours = with_oodlab(
                model_name, options, bench, batch, args.steps, device, Path(tmp) / "run"
            )
        rows.append(
            {
                "model": model_name,
                "input": list(shape),
                "batch_size": batch,
                "steps": args.steps,
                "hand_written_images_per_s": reference,
                "oodlab_images_per_s": ours,
                "ratio": ours / reference,
                "target_ratio_at_least": 0.95,
            }
        )
        print(rows[-1])
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
