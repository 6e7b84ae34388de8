"""NNGuide and Relation: oodlab's float32 block form vs the float64 whole-bank form it replaced.

Each (score, form) runs in its own child process on random data (bank of ``--bank`` rows,
D = 512, C = 100, ``--queries`` queries, peaked logits so that Relation keeps its edges), one
thread. Recorded: CPU seconds, peak RSS above the inputs, and the largest relative difference
of the scores from the float64 form. Writes ``benchmarks/results/bank_scores.json``.

Usage: ``python benchmarks/bank_scores.py [--bank 100000] [--queries 2000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "bank_scores.json"
DIM, CLASSES, K, THRESHOLD = 512, 100, 100, 0.03


def _data(bank: int, queries: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(bank, DIM, generator=g),
        6 * torch.randn(bank, CLASSES, generator=g),
        torch.randn(queries, DIM, generator=g),
        6 * torch.randn(queries, CLASSES, generator=g),
    )


def float64_form(score: str, feats, logits, qf, ql) -> torch.Tensor:
    """The former computation: the whole bank in float64, queries × whole bank at once."""
    from oodlab.scores._features import l2_normalize

    if score == "nnguide":
        bank = l2_normalize(feats.double()) * torch.logsumexp(logits.double(), 1, keepdim=True)
        q = l2_normalize(qf.double())
        g = torch.cat([(b @ bank.T).topk(K, 1).values.mean(1) for b in q.split(2048)])
        return -(g * torch.logsumexp(ql.double(), 1))
    bz, bp = l2_normalize(feats.double()), torch.softmax(logits.double(), 1)
    z, p = l2_normalize(qf.double()), torch.softmax(ql.double(), 1)
    parts = []
    for zb, pb in zip(z.split(256), p.split(256), strict=True):
        rel = (zb @ bz.T).clamp_min(0) * (pb @ bp.T)
        parts.append((rel * (rel.abs() > THRESHOLD)).sum(1))
    return -torch.cat(parts)


def oodlab_form(score: str, feats, logits, qf, ql) -> torch.Tensor:
    from oodlab.scores import SCORES
    from oodlab.types import Outputs

    train = Outputs(logits, feats, torch.zeros(len(feats), dtype=torch.long))
    test = Outputs(ql, qf, torch.zeros(len(qf), dtype=torch.long))
    options = {"k": K} if score == "nnguide" else {"threshold": THRESHOLD}
    return SCORES.create(score, **options).fit(train).score(test)


def child(score: str, form: str, bank: int, queries: int, out: str) -> None:
    import oodlab.scores  # noqa: F401 - imported before the baseline, for both forms

    torch.set_num_threads(1)
    data = _data(bank, queries)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    values = (float64_form if form == "float64" else oodlab_form)(score, *data)
    seconds = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save(values.double(), out)
    print(json.dumps({"cpu_seconds": round(seconds, 2), "peak_rss_gib": (peak - base) / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.bank, args.queries, args.child[2])
        return
    report: dict[str, Any] = {
        "bank": args.bank, "queries": args.queries, "dim": DIM, "classes": CLASSES,
        "threads": 1, "load_average": list(os.getloadavg()),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for score in ("nnguide", "relation"):
            rows: dict[str, Any] = {}
            for form in ("float64", "oodlab"):
                out = str(Path(tmp) / f"{score}_{form}.pt")
                command = [sys.executable, __file__, "--bank", str(args.bank), "--queries",
                           str(args.queries), "--child", score, form, out]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                rows[form] = json.loads(done.stdout.strip().splitlines()[-1])
                rows[form]["peak_rss_gib"] = round(rows[form]["peak_rss_gib"], 2)
            a = torch.load(Path(tmp) / f"{score}_float64.pt", weights_only=True)
            b = torch.load(Path(tmp) / f"{score}_oodlab.pt", weights_only=True)
            scale = a.abs().max().clamp_min(1e-12)
            rows["max_difference_relative_to_max"] = float((a - b).abs().max() / scale)
            rows["nonzero_scores"] = int((a != 0).sum())
            report[score] = rows
            print(score, rows, flush=True)
    from oodlab.io import atomic_write_json

    atomic_write_json(RESULTS, report)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
