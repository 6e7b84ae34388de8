"""The long-tailed methods under torchrun (2 gloo processes on the CPU).

ImOOD (without its PASCL term) and PATT decompose over the batch, so two processes must end
with the single-process weights; PATT's running class means are all-reduced, so they agree
too. PASCL's contrastive term contrasts within each process's share (as the official DDP
code does), so it is only required to train, fine-tune its second branch and evaluate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oodlab.io import safe_torch_load

BASE = """
data: {{benchmark: synthetic, batch_size: 32, crop_padding: 2, flip: true}}
model: {{name: small_cnn, options: {{width: 0.5, norm: none}}}}
train: {{epochs: 2, lr: 0.01, optimizer: sgd, quiet: true, device: cpu}}
method: {method}
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(config: Path, run: Path, processes: int) -> None:
    launcher = [sys.executable, "-m"]
    if processes > 1:
        launcher += ["torch.distributed.run", f"--nproc_per_node={processes}", "--standalone", "-m"]
    done = subprocess.run(
        [*launcher, "oodlab.cli", "train", str(config), "--run-dir", str(run)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [
        "{name: imood, options: {aux_loss: none}}",
        "{name: patt, options: {views: batch}}",
    ],
)
def test_ddp_equals_single_process(tmp_path, method):
    config = tmp_path / "run.yaml"
    config.write_text(BASE.format(method=method))
    _train(config, tmp_path / "ddp", 2)
    _train(config, tmp_path / "one", 1)
    a = safe_torch_load(tmp_path / "ddp" / "model.pt")
    b = safe_torch_load(tmp_path / "one" / "model.pt")
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    if "patt" in method:
        ckpt_a = safe_torch_load(tmp_path / "ddp" / "checkpoint.pt")["recipe"]
        ckpt_b = safe_torch_load(tmp_path / "one" / "checkpoint.pt")["recipe"]
        torch.testing.assert_close(ckpt_a["means"], ckpt_b["means"], rtol=1e-4, atol=1e-5)
        assert torch.equal(ckpt_a["counts"], ckpt_b["counts"])


@pytest.mark.slow
def test_pascl_trains_both_stages_under_ddp(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(BASE.format(method="{name: pascl, options: {abf_epochs: 1}}"))
    _train(config, tmp_path / "ddp", 2)
    rows = (tmp_path / "ddp" / "train_log.jsonl").read_text()
    assert '"stage": "abf"' in rows
    assert (tmp_path / "ddp" / "model.pt").is_file()
