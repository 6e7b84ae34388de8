"""What a training run shows while it runs: one line per epoch and optional TensorBoard.

Rank 0 prints, after every epoch, the epoch's mean loss terms, the ID test accuracy when it
was measured, the training throughput and an estimate of the time left::

    main 3/10  loss 0.4123  ce 0.3120  oe 0.1003  acc 81.20%  lr 0.00095  2,310 img/s  ETA 0:01:23

With ``train.tensorboard: true`` every number of the JSON train log (epoch rows, and the
step rows of ``train.log_every``) is also written as a TensorBoard scalar under
``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``); it needs the optional
``tensorboard`` package (``pip install 'oodlab[tensorboard]'``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oodlab.errors import ConfigError

#: Keys of a train-log row that are bookkeeping, not loss terms.
BOOKKEEPING = ("scope", "stage", "stage_index", "epoch", "step", "lr", "images_per_s")


class Progress:
    """Per-epoch console lines (rank 0) and the TensorBoard mirror of the train log."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.writer: Any = None
        self.epoch_seconds: list[float] = []
        self.last = time.perf_counter()
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "train.tensorboard needs the tensorboard package; "
                    "pip install 'oodlab[tensorboard]', or set train.tensorboard: false"
                ) from None
            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def start(self) -> None:
        """Start the clock of the next epoch (after set-up, checkpoint loading, ...)."""
        self.last = time.perf_counter()

    def epoch(self, row: Mapping[str, Any], epochs: int, epochs_left: int) -> str | None:
        """Print (rank 0) and mirror one epoch row; ``epochs_left`` after this one, all stages."""
        now = time.perf_counter()
        self.epoch_seconds.append(now - self.last)
        self.last = now
        if not self.enabled:
            return None
        self.mirror(row)
        eta = epochs_left * sum(self.epoch_seconds) / len(self.epoch_seconds)
        line = epoch_line(row, epochs, eta)
        print(line, file=sys.stdout, flush=True)
        return line

    def mirror(self, row: Mapping[str, Any]) -> None:
        """Write the numbers of one train-log row as TensorBoard scalars (if enabled)."""
        if self.writer is None:
            return
        stage = str(row.get("stage", "main"))
        scope = str(row.get("scope", "epoch"))
        step = int(row.get("step", 0))
        for key, value in row.items():
            if key in ("scope", "stage", "stage_index", "step") or not _number(value):
                continue
            self.writer.add_scalar(f"{stage}/{scope}/{key}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def epoch_line(row: Mapping[str, Any], epochs: int, eta_seconds: float) -> str:
    """The console line of one epoch row (see the module docstring)."""
    parts = [f"{row.get('stage', 'main')} {int(row['epoch']) + 1}/{epochs}"]
    for key, value in row.items():
        if key not in BOOKKEEPING and key != "id_accuracy" and _number(value):
            parts.append(f"{key} {float(value):.4f}")
    if _number(row.get("id_accuracy")):
        parts.append(f"acc {100 * float(row['id_accuracy']):.2f}%")
    if _number(row.get("lr")):
        parts.append(f"lr {float(row['lr']):.3g}")
    if _number(row.get("images_per_s")) and math.isfinite(float(row["images_per_s"])):
        parts.append(f"{float(row['images_per_s']):,.0f} img/s")
    parts.append(f"ETA {_clock(eta_seconds)}")
    return "  ".join(parts)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
