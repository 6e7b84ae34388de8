"""Two processes under torchrun (gloo, CPU) end with the weights of one process on the same
global batch: DDP averages the per-process gradients, each process trains on its share of
every (identically augmented) global batch, and only rank 0 writes the run folder.

The model has no BatchNorm (``norm: none``): DDP's BatchNorm normalises with each process's
share of the batch, so a BatchNorm model would differ from the single-process run by design
(SyncBatchNorm or GroupNorm — ``norm: group`` — avoid that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from oodlab.io import safe_torch_load
from oodlab.train.run import read_log

CONFIG = """
data: {benchmark: synthetic, batch_size: 32, crop_padding: 2, flip: true}
model: {name: small_cnn, options: {width: 0.5, norm: none}}
train: {epochs: 2, lr: 0.05, optimizer: sgd, quiet: true, device: cpu}
method: {name: oe}
"""


@pytest.mark.slow
def test_two_process_ddp_equals_single_process(tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    ddp = subprocess.run(
        [*torchrun, "-m", "oodlab.cli", "train", str(config), "--run-dir", str(tmp_path / "ddp")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("run folder:") == 1  # only rank 0 prints the summary
    assert ddp.stdout.count("main 2/2") == 1  # and the epoch lines
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "oodlab.cli",
            "train",
            str(config),
            "--run-dir",
            str(tmp_path / "one"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    a = safe_torch_load(tmp_path / "ddp" / "model.pt")
    b = safe_torch_load(tmp_path / "one" / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    rows = [r for r in read_log(tmp_path / "ddp") if r["scope"] == "epoch"]
    assert [r["epoch"] for r in rows] == [0, 1]  # rank 0 alone writes the log
    assert json.loads((tmp_path / "ddp" / "meta.json").read_text())["world_size"] == 2
    # Both runs report the same epoch losses (averaged over the processes under DDP).
    single = [r["loss"] for r in read_log(tmp_path / "one") if r["scope"] == "epoch"]
    assert [r["loss"] for r in rows] == pytest.approx(single, rel=1e-5)
    # The last epoch moved the weights, so the equality is not between two idle models.
    after_first_epoch = safe_torch_load(tmp_path / "one" / "checkpoint.prev.pt")["model"]
    assert any(not torch.allclose(after_first_epoch[k], b[k]) for k in b)
