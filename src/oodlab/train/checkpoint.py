"""Atomic, verified checkpoints with the previous good one kept; RNG state as plain tensors.

``save`` writes the new checkpoint completely (bytes and a ``.json`` record holding their
SHA-256 and epoch) under a temporary name, then rotates ``checkpoint.pt`` to
``checkpoint.prev.pt`` and moves the new one in, each step an atomic ``os.replace``. A file is
good when its SHA-256 appears in *any* record beside it, so a crash at any point leaves at
least one good checkpoint that :func:`load_latest` finds. Loading checks the hash before
unpickling anything (``weights_only=True``); a truncated or corrupted file raises one line,
and :func:`load_latest` falls back to the newest good one with a warning — never a half-load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodlab.errors import CheckpointError
from oodlab.io import atomic_write_bytes, atomic_write_json, safe_torch_load, sha256_file

LATEST, PREVIOUS, NEXT = "checkpoint", "checkpoint.prev", "checkpoint.next"


def save(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the latest checkpoint; the former latest becomes the previous one."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "epoch": state.get("epoch")}
    record["stage"] = state.get("stage")
    atomic_write_bytes(run_dir / f"{NEXT}.pt", data)
    atomic_write_json(run_dir / f"{NEXT}.json", record)
    for src, dst in ((LATEST, PREVIOUS), (NEXT, LATEST)):
        if (run_dir / f"{src}.pt").is_file():
            os.replace(run_dir / f"{src}.pt", run_dir / f"{dst}.pt")
            os.replace(run_dir / f"{src}.json", run_dir / f"{dst}.json")
    return run_dir / f"{LATEST}.pt"


def _known_hashes(run_dir: Path) -> set[str]:
    hashes = set()
    for name in (LATEST, PREVIOUS, NEXT):
        try:
            hashes.add(str(json.loads((run_dir / f"{name}.json").read_text())["sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return hashes


def load_verified(path: Path) -> dict[str, Any]:
    """Load one checkpoint after checking its hash; any defect raises :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if sha256_file(path) not in _known_hashes(path.parent):
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted (its SHA-256 matches no record "
            f"beside it); it was not loaded"
        )
    state = safe_torch_load(path)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} does not hold an oodlab training state")
    return state


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest good checkpoint of ``run_dir`` (``None`` if it has none at all)."""
    candidates = [run_dir / f"{name}.pt" for name in (LATEST, NEXT, PREVIOUS)]
    existing = [path for path in candidates if path.is_file()]
    if not existing:
        return None
    good: list[tuple[tuple[int, int], Path, dict[str, Any]]] = []
    errors = []
    for path in existing:
        try:
            state = load_verified(path)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        good.append(((int(state.get("stage") or 0), int(state.get("epoch") or 0)), path, state))
    if not good:
        raise CheckpointError(f"no usable checkpoint in {run_dir}: {'; '.join(errors)}")
    _, path, state = max(good, key=lambda item: item[0])
    if errors or path.name != f"{LATEST}.pt":
        reason = errors[0] if errors else f"{LATEST}.pt is older"
        warnings.warn(f"{reason}; resuming from {path.name}", stacklevel=2)
    return state


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (CPU and CUDA) as tensors and lists."""
    _, keys, position, *_ = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(position),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))  # noqa: NPY002
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's (legacy global) and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global state other code may draw from)
    torch.manual_seed(seed)
