"""``torchrun --nproc_per_node=2 -m oodlab.cli eval`` (gloo, CPU) equals the single-process run.

Each rank extracts a contiguous run of whole batches of every dataset into the cache, rank 0
merges the shards and alone fits, scores and reports: the metrics and every per-sample score
must be identical to one process evaluating the same run (batch size 24 does not divide the
dataset sizes, so the shards differ in size and the last batch is short).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from oodlab.eval.sharded import batch_shard

CONFIG = """
data: {benchmark: synthetic, batch_size: 32}
model: {name: small_cnn, options: {width: 0.5}}
train: {epochs: 1, lr: 0.05, optimizer: sgd, quiet: true, device: cpu}
method: {name: ce}
"""
SCORES = "msp,energy,mahalanobis,knn,vim,react,kl_matching"


def test_batch_shards_cover_every_sample_once_in_whole_batches():
    for n in (1, 7, 24, 100, 101):
        for world in (1, 2, 3, 5):
            shards = [batch_shard(n, 24, r, world) for r in range(world)]
            assert [i for s in shards for i in s] == list(range(n))
            assert all(s.start % 24 == 0 for s in shards if len(s))


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_process_eval_equals_single_process(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "oodlab.cli"]
    _run([*cli, "train", str(config), "--run-dir", str(tmp_path / "run")], env)
    common = ["--scores", SCORES, "--batch-size", "24", "--device", "cpu", "--quiet"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    _run(
        [*torchrun, "-m", "oodlab.cli", "eval", str(tmp_path / "run"), *common,
         "--cache-dir", str(tmp_path / "cache2"), "--out", str(tmp_path / "two")],
        env,
    )  # fmt: skip
    _run(
        [*cli, "eval", str(tmp_path / "run"), *common,
         "--cache-dir", str(tmp_path / "cache1"), "--out", str(tmp_path / "one")],
        env,
    )  # fmt: skip
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert sorted(one["scores"]) == sorted(SCORES.split(","))
    for name, result in one["scores"].items():
        assert two["scores"][name]["per_set"] == result["per_set"], name
    assert two["id_accuracy"] == one["id_accuracy"]
    with (
        np.load(tmp_path / "one" / "scores.npz") as a,
        np.load(tmp_path / "two" / "scores.npz") as b,
    ):
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # The network ran once per dataset in each process, and no shard entry was left behind.
    assert not [p for p in (tmp_path / "cache2").rglob("meta.json") if "shard" in p.read_text()]
