"""Evaluation speed: all cached scores vs one forward pass, and KNN with faiss vs brute force.

Writes ``benchmarks/results/eval_speed.json``. Two measurements:

1. A CIFAR-shaped evaluation (ResNet-18 on 3×32×32 images: a training set, an ID test set
   and three OOD sets, random pixels). The time of one forward pass over all of that data
   is compared with the time to fit and evaluate every score that needs no input gradient
   from the cached outputs (target: all scores together ≤ 20% of one forward pass).
2. KNN on a 50k×512 bank with 10k queries (k = 50): faiss ``IndexFlatL2`` vs a chunked
   brute-force torch matmul + top-k, and whether the two agree.

Usage: ``python benchmarks/eval_speed.py [--device cpu|cuda] [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

import oodlab
from oodlab.eval.cli import zoo_scores
from oodlab.eval.evaluate import evaluate
from oodlab.eval.extract import ExtractConfig, extract, resolve_device
from oodlab.io import atomic_write_json
from oodlab.models import MODELS
from oodlab.scores.knn import knn_distances

RESULTS = Path(__file__).resolve().parent / "results" / "eval_speed.json"


def _images(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=generator)


def eval_vs_forward(device: str, sizes: dict[str, int]) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    model = MODELS.create("resnet18_cifar", num_classes=10, in_channels=3).to(
        resolve_device(device)
    )
    train_labels = torch.arange(sizes["train"]) % 10
    test_labels = torch.arange(sizes["id"]) % 10
    train = TensorDataset(_images(sizes["train"], g), train_labels)
    id_test = TensorDataset(_images(sizes["id"], g), test_labels)
    ood = {
        f"ood{i}": TensorDataset(_images(sizes["ood"], g), torch.full((sizes["ood"],), -1))
        for i in range(3)
    }
    config = ExtractConfig(batch_size=256, device=device, cache_dir=None, quiet=True)

    start = time.perf_counter()
    for name, ds in {"train": train, "id": id_test, **ood}.items():
        extract(model, ds, config, name=name)
    forward_seconds = time.perf_counter() - start

    with_cache = ExtractConfig(
        batch_size=256, device=device, cache_dir=Path(".oodlab_cache/bench"), quiet=True
    )
    for name, ds in {"train": train, "id": id_test, **ood}.items():  # fill the cache
        extract(model, ds, with_cache, name=name)
    scores = [s for s in zoo_scores() if s not in {"mos"}]
    start = time.perf_counter()
    result = evaluate(
        model,
        id_test,
        ood,
        scores,
        train=train,
        aux=ood["ood0"],
        extract_config=with_cache,
        skip_unavailable=True,
        plots=False,
    )
    scores_seconds = time.perf_counter() - start
    return {
        "model": "resnet18_cifar",
        "images": sizes,
        "forward_pass_seconds": forward_seconds,
        "all_scores_from_cache_seconds": scores_seconds,
        "ratio": scores_seconds / forward_seconds,
        "target_ratio_at_most": 0.20,
        "scores": sorted(result.scores),
        "skipped": result.skipped,
        "per_score_seconds": {k: v.seconds for k, v in result.scores.items()},
        "network_passes_during_scoring": result.meta["network_passes"],
    }


def knn_faiss_vs_torch(bank_size: int, queries: int, dim: int = 512, k: int = 50) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(bank_size, dim, generator=g), dim=1)
    query = torch.nn.functional.normalize(torch.randn(queries, dim, generator=g), dim=1)
    timings, results = {}, {}
    for backend in ("faiss", "torch"):
        start = time.perf_counter()
        results[backend] = knn_distances(bank, query, k, backend=backend)
        timings[backend] = time.perf_counter() - start
    max_abs_diff = (results["faiss"] - results["torch"]).abs().max().item()
    return {
        "bank": [bank_size, dim],
        "queries": queries,
        "k": k,
        "seconds": timings,
        "torch_over_faiss": timings["torch"] / timings["faiss"],
        "max_abs_difference": max_abs_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.quick:
        sizes = {"train": 1000, "id": 500, "ood": 300}
        bank, queries = 5000, 1000
    else:
        sizes = {"train": 10000, "id": 2000, "ood": 1000}
        bank, queries = 50000, 10000
    report = {
        "oodlab_version": oodlab.__version__,
        "torch": torch.__version__,
        "device": args.device if args.device != "cuda" else torch.cuda.get_device_name(),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "eval_vs_forward": eval_vs_forward(args.device, sizes),
        "knn": knn_faiss_vs_torch(bank, queries),
    }
    atomic_write_json(RESULTS, report)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
