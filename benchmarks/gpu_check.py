"""The GPU check: what a lent CUDA device must show, in one run of a few minutes.

Run through ``benchmarks/gpu_check.sh`` (which first runs the ``gpu``-marked tests). Parts:

1. ``train``: images/s of oodlab's training loop (method ``ce``, defaults) vs an
   airbench-style reference loop on the same device (data on the device, crop + flip there,
   bfloat16 autocast, ``channels_last``, fused Adam), ``resnet18_cifar`` at batch 128 and 256;
   the ratio is the median of ``--pairs`` interleaved pairs (A B A B …) with min and max
   (target ≥ 0.9).
2. ``syncs``: host synchronisations per training step of each recipe, counted with
   ``torch.cuda.set_sync_debug_mode("warn")`` over one epoch (target 0, NPOS ≤ 1).
3. ``eval``: one forward pass over CIFAR-shaped data vs fitting and running every cached
   score (``benchmarks/eval_speed.py``'s measurement; target ≤ 20 %).
4. ``pascl``: images/s of the PASCL recipe at batch 256, projected to the CIFAR-10-LT run
   (12,406 images, 200 epochs; goal < 10 min on one H100).

Writes ``benchmarks/results/gpu_check.json`` with the device name. Without CUDA it prints
what it would measure, records the parts as skipped, and exits 0.

``--smoke`` runs every part on the CPU at tiny sizes (``small_cnn``, a few steps, no sync
counting) and prints the results without writing the JSON: a check of the code paths on a
machine without a GPU, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.json"
PLAN = {
    "train": "oodlab loop vs airbench-style reference, resnet18_cifar, batch 128 and 256, "
    "median of interleaved pairs with min/max (target >= 0.9x)",
    "syncs": "host syncs per step per recipe via torch.cuda.set_sync_debug_mode('warn') "
    "(target 0; NPOS <= 1)",
    "eval": "extraction throughput and all cached scores vs one forward pass (target <= 20%)",
    "pascl": "PASCL images/s at batch 256 projected to CIFAR-10-LT, 200 epochs (goal < 10 min)",
}
RECIPES = ("ce", "oe", "energy_oe", "imood", "pascl", "patt", "npos")
CIFAR10_LT_IMAGES = 12406


@dataclasses.dataclass(frozen=True)
class Setting:
    """Sizes of the check: the real one on CUDA, or a tiny CPU smoke run (``--smoke``)."""

    model: str = "resnet18_cifar"
    batches: tuple[int, ...] = (128, 256)
    steps: int = 100
    sync_batch: int = 64
    sync_steps: int = 20
    eval_sizes: tuple[int, int, int] = (50000, 10000, 10000)
    pascl_images: int = CIFAR10_LT_IMAGES
    pascl_aux: int = 30000
    pascl_batch: int = 256
    abf_batch: int | None = None  # PASCL's second stage: its own batch (128) unless set

    def method_options(self, method: str) -> list[str]:
        """PASCL: one epoch of its second stage (and its batch when set), not ten."""
        if method != "pascl":
            return []
        batch = (
            [] if self.abf_batch is None else [f"method.options.abf_batch_size={self.abf_batch}"]
        )
        return ["method.options.abf_epochs=1", *batch]


SMOKE = Setting("small_cnn", (16,), 3, 8, 3, (100, 50, 50), 96, 96, 16, abf_batch=8)


def reference_loop(
    batch: int, steps: int, device: torch.device, warmup: int = 5, name: str = "resnet18_cifar"
) -> float:
    """airbench-style: on-device data and augmentation, bf16, channels_last, fused Adam."""
    from train_speed import sync

    from oodlab.data.transforms import crop_flip
    from oodlab.models import MODELS

    torch.manual_seed(0)
    model = MODELS.create(name, num_classes=10, in_channels=3).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    fused = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    images = torch.randint(0, 256, (batch * steps, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (batch * steps,), device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        rows = slice((step % steps) * batch, (step % steps + 1) * batch)
        x = crop_flip(images[rows], 4, True, generator).float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def oodlab_loop(
    batch: int, steps: int, device: torch.device, name: str = "resnet18_cifar"
) -> float:
    """images/s of ``oodlab.train`` (method ``ce``) in its second epoch
    (``train_speed.with_oodlab``)."""
    from train_speed import random_benchmark, with_oodlab

    bench = random_benchmark(batch * steps, (3, 32, 32))
    return with_oodlab(name, {}, bench, batch, steps, device, True)


def ratio_of_pairs(reference: list[float], ours: list[float]) -> dict[str, Any]:
    ratios = [o / r for o, r in zip(ours, reference, strict=True)]
    return {
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "reference_images_per_s": [round(v, 1) for v in reference],
        "oodlab_images_per_s": [round(v, 1) for v in ours],
    }


def part_train(device: torch.device, pairs: int, setting: Setting) -> dict[str, Any]:
    rows = {}
    for batch in setting.batches:
        steps, name = setting.steps, setting.model
        reference, ours = [], []
        for _ in range(pairs):  # interleaved: A B A B ...
            reference.append(reference_loop(batch, steps, device, name=name))
            ours.append(oodlab_loop(batch, steps, device, name))
        rows[f"batch_{batch}"] = {**ratio_of_pairs(reference, ours), "target_at_least": 0.9}
    return rows


def _cifar_lt_like(key: str, n_train: int, n_aux: int) -> str:
    """Register a CIFAR-shaped random benchmark (with auxiliary outliers) under ``key``."""
    from oodlab.data import BENCHMARKS, Benchmark, TensorImageDataset

    if key not in BENCHMARKS:
        g = torch.Generator().manual_seed(0)

        def images(n: int) -> torch.Tensor:
            return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)

        train = TensorImageDataset(images(n_train), torch.arange(n_train) % 10, name=key)
        test = TensorImageDataset(images(1000), torch.arange(1000) % 10, name=f"{key}-test")
        aux = TensorImageDataset(images(n_aux), torch.full((n_aux,), -1), name=f"{key}-aux")
        ood = TensorImageDataset(images(1000), torch.full((1000,), -1), name=f"{key}-ood")
        bench = Benchmark(
            key, 10, (3, 32, 32), train, test, {"ood": ood}, aux=aux,
            class_counts=[n_train // 10] * 10,
        )  # fmt: skip
        BENCHMARKS.register(key)(lambda data_root=None, seed=0, **_: bench)
    return key


def _train_once(overrides: list[str]) -> tuple[Any, list[dict[str, Any]]]:
    import tempfile

    from oodlab.config import RunConfig, apply_overrides, from_dict
    from oodlab.train.loop import train
    from oodlab.train.run import read_log

    config = from_dict(RunConfig, apply_overrides({}, overrides))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, Path(tmp) / "run")
        log = [r for r in read_log(Path(tmp) / "run") if r.get("scope") == "epoch"]
    return result, log


def part_syncs(device: torch.device, setting: Setting) -> dict[str, Any]:
    """Host syncs in a one-epoch run per recipe (``warn`` mode: one warning per sync; on the
    CPU the recipes only run, nothing is counted)."""
    batch, steps = setting.sync_batch, setting.sync_steps
    key = _cifar_lt_like(f"gpu_check_small_{batch * steps}", batch * steps, batch * steps)
    cuda = device.type == "cuda"
    rows: dict[str, Any] = {}
    for method in RECIPES:
        overrides = [
            f"data.benchmark={key}", f"data.batch_size={batch}", f"model.name={setting.model}",
            "train.epochs=1", "train.eval_every=0", "train.quiet=true", f"train.device={device}",
            f"method.name={method}", *setting.method_options(method),
        ]  # fmt: skip
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if cuda:
                    torch.cuda.set_sync_debug_mode("warn")
                try:
                    _, log = _train_once(overrides)
                finally:
                    if cuda:
                        torch.cuda.set_sync_debug_mode("default")
            counted = sum("synchroniz" in str(x.message).lower() for x in caught)
            syncs = counted if cuda else None
            steps = int(log[-1]["step"]) if log else None
            per_step = round(syncs / steps, 2) if steps and syncs is not None else None
            rows[method] = {"syncs": syncs, "steps": steps, "syncs_per_step": per_step}
        except Exception as exc:  # one recipe's failure must not hide the others
            rows[method] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return rows


def part_eval(device: torch.device, setting: Setting) -> dict[str, Any]:
    from eval_speed import eval_vs_forward

    train, id_test, ood = setting.eval_sizes
    return eval_vs_forward(str(device), {"train": train, "id": id_test, "ood": ood})


def part_pascl(device: torch.device, setting: Setting) -> dict[str, Any]:
    """Two epochs of the CIFAR-10-LT PASCL recipe on CIFAR-sized random data, projected."""
    images = setting.pascl_images
    key = _cifar_lt_like(f"gpu_check_cifar10_lt_{images}", images, setting.pascl_aux)
    overrides = [
        f"data.benchmark={key}", f"data.batch_size={setting.pascl_batch}",
        f"model.name={setting.model}", "train.epochs=3", "train.quiet=true",
        f"train.device={device}", "method.name=pascl", *setting.method_options("pascl"),
    ]  # fmt: skip
    start = time.perf_counter()
    _, log = _train_once(overrides)
    seconds = time.perf_counter() - start
    # Epoch time of the training steps = ID images of the epoch / the logged images_per_s.
    epochs = [images / float(r["images_per_s"]) for r in log if r.get("images_per_s")]
    steady = statistics.median(epochs[1:]) if len(epochs) > 1 else float("nan")
    projected = 210 * steady  # 200 epochs + 10 of the auxiliary branch (bounded above)
    return {
        "epoch_seconds": [round(e, 2) for e in epochs],
        "whole_run_seconds": round(seconds, 1),
        "projected_200_plus_10_epochs_seconds": round(projected, 1),
        "goal_seconds_below": 600,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--parts", default="train,syncs,eval,pascl")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every part")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "machine": platform.machine(),
        "load_average": list(os.getloadavg()),
    }
    if args.smoke:
        return smoke(parts, args.pairs)
    if not torch.cuda.is_available():
        report["device"] = "cpu (no CUDA device)"
        report["skipped"] = {p: f"needs CUDA; would measure: {PLAN[p]}" for p in parts}
        for part in parts:
            print(f"[skipped: no CUDA] {part}: would measure {PLAN[part]}")
    else:
        device = torch.device("cuda")
        report["device"] = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = True
        report.update(run_parts(parts, device, args.pairs, Setting()))
    from oodlab.io import atomic_write_json

    atomic_write_json(RESULTS, report)
    print(f"wrote {RESULTS}")
    return 0


def run_parts(
    parts: list[str], device: torch.device, pairs: int, setting: Setting
) -> dict[str, Any]:
    """Each part's result and seconds; a failing part is reported and the others still run."""
    report: dict[str, Any] = {}
    for part in parts:
        start = time.perf_counter()
        try:
            if part == "train":
                value = part_train(device, pairs, setting)
            else:
                value = {"syncs": part_syncs, "eval": part_eval, "pascl": part_pascl}[part](
                    device, setting
                )
        except Exception as exc:  # report and go on: the check must finish in one run
            value = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        report[part] = {"result": value, "seconds": round(time.perf_counter() - start, 1)}
        print(part, report[part], flush=True)
    return report


def smoke(parts: list[str], pairs: int) -> int:
    """Every part on the CPU at tiny sizes; 1 if any part failed. Nothing is written."""
    print("smoke run on the CPU at tiny sizes: checks the code paths, measures nothing")
    report = run_parts(parts, torch.device("cpu"), pairs, SMOKE)
    failed = [p for p, v in report.items() if "error" in v["result"] or _nested_error(v)]
    print("smoke:", "failed: " + ", ".join(failed) if failed else "every part ran")
    return 1 if failed else 0


def _nested_error(value: Any) -> bool:
    if isinstance(value, dict):
        return "error" in value or any(_nested_error(v) for v in value.values())
    return False


if __name__ == "__main__":
    raise SystemExit(main())
