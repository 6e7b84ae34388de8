"""Evaluation at ImageNet scale on one machine: time and peak resident memory vs bank size.

Synthetic outputs of ImageNet shapes (D = 2048 features, C = 1000 classes) go through the
real pipeline: ``extract`` streams a forward pass of a synthetic model (``features(x) = x``,
a linear head) into the extraction cache in chunks, then ``evaluate`` runs the score zoo
from the memory-mapped cache. For each training-set size this writes, in
``benchmarks/results/eval_scale.json``:

* ``extract``: wall and CPU seconds and peak RSS of writing every cache entry, with the
  payload (bytes written) — target: peak RSS ≤ 1.1× the payload;
* ``zoo``: the whole zoo in one ``evaluate`` call (cache hits only): seconds and peak RSS,
  and each score's own fit + score seconds — target at 1.28M: peak RSS ≤ 12 GiB;
* ``per_score`` (``--per-score``): each score alone in one process that has loaded the
  outputs, with the process's peak RSS reset before each score (``/proc/self/clear_refs``);
* ``knn_recall`` (``--recall``): recall@k of the ``ivf`` and ``hnsw`` faiss indexes against
  the exact one on the same bank.

Every phase runs in a child process (``nice``) watched by the parent, which kills it if its
RSS passes ``--rss-limit-gib`` (recorded as ``killed``). KNN uses the paper's ImageNet
setting (k = 1000, a 1 % bank); the scores that need extra heads, groups or auxiliary
outliers are skipped (recorded). The cache lives under ``--work`` and is removed afterwards.

Usage::

    python benchmarks/eval_scale.py --sizes 10000,100000 [--per-score] [--recall]
    nice -n 10 python benchmarks/eval_scale.py --sizes 1281167 --rss-limit-gib 12
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

RESULTS = Path(__file__).resolve().parent / "results" / "eval_scale.json"
BLOCK = 1024
KNN_SPEC = ("knn", {"k": 1000, "bank_fraction": 0.01})


class Synthetic(Dataset[tuple[Tensor, int]]):
    """Class-conditional ReLU features (ID) or shifted ones (OOD), generated in seeded blocks.

    Item ``i`` has label ``i mod C`` (every class is present) and features
    ``relu(μ_y + ε)``, with ``μ_c`` a seeded Gaussian plus a bump of 3 at coordinate ``c``;
    OOD items are ``relu(1.3 ε + 0.2)``. Items depend only on their index (blocks of 1024).
    """

    def __init__(self, n: int, dim: int, classes: int, seed: int, ood: bool = False) -> None:
        self.n, self.dim, self.classes, self.seed, self.ood = n, dim, classes, seed, ood
        g = torch.Generator().manual_seed(12345)
        self.means = torch.randn(classes, dim, generator=g) * 0.5
        self.means[torch.arange(classes), torch.arange(classes) % dim] += 3.0
        self._block: tuple[int, Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return self.n

    def fingerprint(self) -> str:
        return f"synthetic-{self.n}-{self.dim}-{self.classes}-{self.seed}-{self.ood}-b{BLOCK}"

    def _get_block(self, b: int) -> tuple[Tensor, Tensor]:
        if self._block is None or self._block[0] != b:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + b)
            start = b * BLOCK
            rows = min(BLOCK, self.n - start)
            noise = torch.randn(rows, self.dim, generator=g)
            if self.ood:
                x = (noise * 1.3 + 0.2).relu()
                labels = torch.full((rows,), -1)
            else:
                labels = torch.arange(start, start + rows) % self.classes
                x = (self.means[labels] + noise).relu()
            self._block = (b, x, labels)
        return self._block[1], self._block[2]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x, y = self._get_block(index // BLOCK)
        return x[index % BLOCK], int(y[index % BLOCK])

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        return [self[i] for i in indices]


class Synthetic1k(nn.Module):
    """``features(x) = x``; the head is the linear map ``W = 2·[I_C | 0]``, ``b = 0``.

    ``head`` computes ``W z + b`` exactly, as ``2·z[:, :C]`` (no (N, D)×(D, C) product), so
    the cached logits are the head of the cached features, as for a real model, and the
    extraction costs what the cache costs, not a forward pass.
    """

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.fc = nn.Linear(dim, classes)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.weight[:, :classes] = 2 * torch.eye(classes)
            self.fc.bias.zero_()

    def features(self, x: Tensor) -> Tensor:
        return x

    def head(self, z: Tensor) -> Tensor:
        return 2 * z[:, : self.classes]

    def linear_head(self) -> nn.Linear:
        return self.fc


def _datasets(args: argparse.Namespace, train_n: int) -> dict[str, Synthetic]:
    sets = {"train": Synthetic(train_n, args.dim, args.classes, 1)}
    sets["id"] = Synthetic(args.id, args.dim, args.classes, 2)
    for i in range(args.ood_sets):
        sets[f"ood{i}"] = Synthetic(args.ood, args.dim, args.classes, 10 + i, ood=True)
    return sets


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One phase in this (child) process; returns its measurements."""
    import faiss  # noqa: F401 - imported before the baseline is read
    import scipy.linalg  # noqa: F401
    import sklearn.metrics  # noqa: F401

    from oodlab.eval.evaluate import build_score, evaluate
    from oodlab.eval.extract import ExtractConfig, extract

    torch.manual_seed(0)
    sets = _datasets(args, args.train)
    model = Synthetic1k(args.dim, args.classes)
    config = ExtractConfig(
        batch_size=1024,
        device="cpu",
        cache_dir=Path(args.work) / "cache",
        quiet=True,
        feature_dtype=args.feature_dtype,
    )
    zoo = _zoo(args.train, args.full_bank_limit)
    baseline = _rss()  # the interpreter with torch, numpy, scikit-learn and faiss imported
    start, cpu = time.perf_counter(), _cpu()
    if args.phase == "extract":
        rows = 0
        for name, data in sets.items():
            rows += len(extract(model, data, config, name=name))
        payload = sum(p.stat().st_size for p in (Path(args.work) / "cache").rglob("*.npy"))
        return {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": _cpu() - cpu,
            "peak_rss": _peak_rss(),
            "baseline_rss": baseline,
            "payload_bytes": payload,
            "rows": rows,
        }
    if args.phase == "zoo":
        ood = {k: v for k, v in sets.items() if k.startswith("ood")}
        result = evaluate(
            model,
            sets["id"],
            ood,
            zoo,
            train=sets["train"],
            extract_config=config,
            skip_unavailable=True,
            plots=False,
        )
        return {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": _cpu() - cpu,
            "peak_rss": _peak_rss(),
            "baseline_rss": baseline,
            "network_passes": result.meta["network_passes"],
            "score_seconds": {k: round(r.seconds, 3) for k, r in result.scores.items()},
            "auroc": {k: round(r.means["all"]["auroc"], 4) for k, r in result.scores.items()},
            "skipped": sorted(result.skipped),
        }
    if args.phase == "per_score":
        outputs = {name: extract(model, data, config, name=name) for name, data in sets.items()}
        base = _peak_rss()
        rows: dict[str, Any] = {"baseline_rss": baseline, "after_load_peak_rss": base}
        for spec in zoo:
            name, score = build_score(spec)
            _reset_peak()
            t0, c0 = time.perf_counter(), _cpu()
            try:
                score.fit(outputs["train"])
                for key, out in outputs.items():
                    if key != "train":
                        score.score(out)
            except Exception as exc:  # recorded, as evaluate(skip_unavailable)
                rows[name] = {"skipped": str(exc).splitlines()[0][:120]}
                continue
            rows[name] = {
                "seconds": round(time.perf_counter() - t0, 3),
                "cpu_seconds": round(_cpu() - c0, 3),
                "peak_rss": _peak_rss(),
            }
            print(json.dumps({"partial": rows}), flush=True)  # kept if the phase is killed
            del score
        return rows
    if args.phase == "recall":
        return _recall(extract(model, sets["train"], config), extract(model, sets["id"], config))
    raise SystemExit(f"unknown phase {args.phase!r}")


#: Bank scores at their published ImageNet settings: a 1 % bank (KNN: k = 1000, Sun et al.
#: 2022; NNGuide: OpenOOD's alpha = 0.01).
BANK_SETTINGS: dict[str, dict[str, Any]] = {
    "knn": {"k": 1000, "bank_fraction": 0.01},
    "nnguide": {"bank_fraction": 0.01},
}
#: Scores left out above ``--full-bank-limit`` training rows: their bank is the whole training
#: set by definition (Relation: N_test × N_train kernel entries, 4.7e14 flops at ImageNet size).
WHOLE_BANK = ("relation",)
#: Cheap scores first, so a phase cut short still reports most of the zoo.
LAST = ("mcm", "knn", "nnguide", "relation", "mahalanobis", "ada_maha", "vim")


def _zoo(train_rows: int = 0, full_bank_limit: int = 20_000) -> list[Any]:
    from oodlab.eval.cli import zoo_scores

    names = [n for n in zoo_scores() if not (n in WHOLE_BANK and train_rows > full_bank_limit)]
    names.sort(key=lambda n: LAST.index(n) if n in LAST else -1)
    return [(n, BANK_SETTINGS[n]) if n in BANK_SETTINGS else n for n in names]


def _recall(train: Any, test: Any, k: int = 100) -> dict[str, Any]:
    from oodlab.scores._features import l2_normalize
    from oodlab.scores.knn import KNN, faiss_index

    exact = KNN(k=k, bank_fraction=0.05, seed=0).fit(train)
    bank = exact.bank_
    queries = l2_normalize(test.features[:2000].float()).numpy()
    _, truth = exact.index_.search(queries, k)
    out: dict[str, Any] = {"bank": len(bank), "queries": len(queries), "k": k}
    for kind in ("ivf", "hnsw"):
        t0 = time.perf_counter()
        index = faiss_index(bank, kind, 0)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, found = index.search(queries, k)
        searched = time.perf_counter() - t0
        hits = sum(
            len(set(a) & set(b)) for a, b in zip(truth.tolist(), found.tolist(), strict=True)
        )
        out[kind] = {
            "recall_at_k": hits / truth.size,
            "build_seconds": round(built, 2),
            "search_seconds": round(searched, 2),
        }
    return out


def run_phase(args: argparse.Namespace, phase: str, train: int) -> dict[str, Any]:
    """Run ``phase`` in a niced child; kill it if its RSS passes the limit."""
    out = Path(args.work) / f"{phase}.json"
    out.unlink(missing_ok=True)
    command = [
        "nice", "-n", str(args.nice), sys.executable, __file__, "--child", phase,
        "--train", str(train), "--work", args.work, "--dim", str(args.dim),
        "--classes", str(args.classes), "--id", str(args.id), "--ood", str(args.ood),
        "--ood-sets", str(args.ood_sets), "--feature-dtype", args.feature_dtype,
        "--full-bank-limit", str(args.full_bank_limit),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=out.open("w"))
    started = time.perf_counter()
    limit = int(args.rss_limit_gib * (1 << 30))
    peak, killed = 0, False

    def watch() -> None:
        nonlocal peak, killed
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss = next(
                    int(x.split()[1]) * 1024 for x in status.splitlines() if x.startswith("VmRSS:")
                )
            except (OSError, StopIteration):
                rss = 0
            peak = max(peak, rss)
            if rss > limit or (args.timeout and time.perf_counter() - started > args.timeout):
                killed = True
                proc.kill()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc.wait()
    watcher.join()
    lines = out.read_text().strip().splitlines()
    if killed or proc.returncode != 0:
        partial = json.loads(lines[-1]).get("partial") if lines else None
        return {
            "killed": killed,
            "returncode": proc.returncode,
            "sampled_peak_rss": peak,
            **({"partial": partial} if partial else {}),
        }
    result = json.loads(lines[-1])
    result["sampled_peak_rss"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="training-set sizes, comma list")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--id", type=int, default=50000)
    parser.add_argument("--ood", type=int, default=10000)
    parser.add_argument("--ood-sets", type=int, default=4)
    parser.add_argument("--feature-dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--work", default="/tmp/oodlab_eval_scale")
    parser.add_argument("--rss-limit-gib", type=float, default=12.0)
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--per-score", action="store_true")
    parser.add_argument("--full-bank-limit", type=int, default=20_000)
    parser.add_argument("--no-zoo", action="store_true", help="skip the whole-zoo evaluate run")
    parser.add_argument("--timeout", type=float, default=0, help="kill a phase after s seconds")
    parser.add_argument("--recall", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic cache")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--train", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.phase = args.child
        print(json.dumps(child(args)))
        return

    import oodlab
    from oodlab.io import atomic_write_json

    previous = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    runs: dict[str, Any] = previous.get("runs", {})

    def save() -> None:
        atomic_write_json(
            args.out,
            {
                "benchmark": "eval_scale",
                "oodlab_version": oodlab.__version__,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads(),
                },
                "notes": "seconds are wall time on a shared, loaded machine (see load_average_*;"
                " cpu_seconds are the child's own); peak_rss = the child's VmHWM (per_score:"
                " reset before each score); sampled_peak_rss = the parent's 0.1 s samples of"
                " VmRSS. KNN: k=1000 on a 1% bank (the paper's ImageNet setting).",
                "runs": runs,
            },
        )

    for train in [int(s) for s in args.sizes.split(",") if s.strip()]:
        shutil.rmtree(args.work, ignore_errors=True)
        Path(args.work).mkdir(parents=True)
        row: dict[str, Any] = {"train": train, "id": args.id, "ood": [args.ood] * args.ood_sets}
        runs[f"{train}x{args.dim}-{args.feature_dtype}"] = row
        row["load_average_before"] = list(os.getloadavg())
        phases = ["extract", *([] if args.no_zoo else ["zoo"])]
        phases += [*(["per_score"] if args.per_score else []), *(["recall"] if args.recall else [])]
        for phase in phases:
            result = run_phase(args, phase, train)
            row["knn_recall" if phase == "recall" else phase] = result
            if phase == "extract" and result.get("payload_bytes"):
                payload = result["payload_bytes"]
                result["peak_over_payload"] = round(result["peak_rss"] / payload, 4)
                extra = result["peak_rss"] - result["baseline_rss"]
                result["peak_above_baseline_over_payload"] = round(extra / payload, 4)
            row["load_average_after"] = list(os.getloadavg())
            save()
        print(json.dumps({train: row}, indent=1), flush=True)
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
