"""Atomic, verified checkpoints with the previous good one kept.

``save`` writes ``checkpoint.pt`` through a temporary file and records the SHA-256 of its
bytes in ``checkpoint.json``; the checkpoint it replaces becomes ``checkpoint.prev.pt``
(with ``checkpoint.prev.json``). ``load_latest`` verifies the hash before unpickling
anything (``weights_only=True``) and falls back to the previous checkpoint, with a
warning, when the latest is missing its record, truncated or corrupted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from oodlab.errors import CheckpointError
from oodlab.io import atomic_write_bytes, atomic_write_json, safe_torch_load, sha256_file

LATEST, PREVIOUS = "checkpoint", "checkpoint.prev"


def save(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the latest checkpoint; the former latest becomes the previous one."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    latest, record = run_dir / f"{LATEST}.pt", run_dir / f"{LATEST}.json"
    if latest.is_file() and record.is_file() and _verified(latest):
        os.replace(latest, run_dir / f"{PREVIOUS}.pt")
        os.replace(record, run_dir / f"{PREVIOUS}.json")
    atomic_write_bytes(latest, data)
    atomic_write_json(
        record, {"sha256": hashlib.sha256(data).hexdigest(), "epoch": state.get("epoch")}
    )
    return latest


def _verified(path: Path) -> bool:
    record = path.with_suffix(".json")
    if not path.is_file() or not record.is_file():
        return False
    try:
        expected = json.loads(record.read_text())["sha256"]
    except (ValueError, KeyError):
        return False
    return bool(sha256_file(path) == expected)


def load_verified(path: Path) -> dict[str, Any]:
    """Load one checkpoint after checking its hash; any defect raises :class:`CheckpointError`."""
    if not _verified(path):
        raise CheckpointError(
            f"checkpoint {path} is missing, truncated or corrupted (its SHA-256 does not match "
            f"{path.with_suffix('.json').name})"
        )
    state = safe_torch_load(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a training state")
    return state


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest good checkpoint of ``run_dir`` (``None`` if the run has none)."""
    latest, previous = run_dir / f"{LATEST}.pt", run_dir / f"{PREVIOUS}.pt"
    if not latest.exists() and not previous.exists():
        return None
    try:
        return load_verified(latest)
    except CheckpointError as exc:
        if not previous.exists():
            raise
        warnings.warn(f"{exc}; resuming from the previous checkpoint {previous.name}", stacklevel=2)
        return load_verified(previous)
