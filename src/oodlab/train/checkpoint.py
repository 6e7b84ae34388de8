"""Atomic, verified checkpoints with the previous good one kept; RNG state as plain tensors.

``save`` writes the new checkpoint completely (bytes, then a ``.json`` record holding their
SHA-256 and epoch) as ``checkpoint.next``, then rotates: ``checkpoint.pt`` and its record become
``checkpoint.prev``, ``checkpoint.next`` becomes ``checkpoint``; each step is one atomic
``os.replace`` and the folder is fsynced at the end. A kill can stop this between any two
steps; the next :func:`save` or :func:`load_latest` first finishes (or, for a ``next`` whose
bytes have no record yet, discards) the interrupted rotation, so every state a kill leaves
resumes, and a missing record never makes a later save fail. A file is good when its SHA-256
appears in a record beside it. Loading checks the hash before unpickling anything
(``weights_only=True``); a truncated or corrupted file raises one line, and
:func:`load_latest` falls back to the newest good one with a one-line warning — never a
half-load.
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
from oodlab.io import (
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    safe_torch_load,
    sha256_file,
)

LATEST, PREVIOUS, NEXT = "checkpoint", "checkpoint.prev", "checkpoint.next"


def _record_of(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def _move(run_dir: Path, src: str, dst: str, suffix: str) -> None:
    """``os.replace`` of ``src`` over ``dst`` if ``src`` exists (each rotation step alone)."""
    if (run_dir / f"{src}{suffix}").exists():
        os.replace(run_dir / f"{src}{suffix}", run_dir / f"{dst}{suffix}")


def _rotate(run_dir: Path) -> None:
    """``checkpoint`` -> ``checkpoint.prev``, then ``checkpoint.next`` -> ``checkpoint``."""
    if (run_dir / f"{LATEST}.pt").exists():
        if not (run_dir / f"{LATEST}.json").exists():  # its record was lost: so is the old one
            (run_dir / f"{PREVIOUS}.json").unlink(missing_ok=True)
        _move(run_dir, LATEST, PREVIOUS, ".pt")
    _move(run_dir, LATEST, PREVIOUS, ".json")
    _move(run_dir, NEXT, LATEST, ".pt")
    _move(run_dir, NEXT, LATEST, ".json")
    fsync_dir(run_dir)


def finish_rotation(run_dir: Path) -> None:
    """Complete a rotation a kill interrupted (or drop a ``next`` that was never complete)."""
    next_pt, next_json = run_dir / f"{NEXT}.pt", run_dir / f"{NEXT}.json"
    if next_pt.exists():
        record = _record_of(next_json)
        if record is not None and sha256_file(next_pt) == record["sha256"]:
            _rotate(run_dir)  # killed after the new checkpoint was complete: roll forward
        else:  # killed while writing it: it was never a checkpoint
            next_pt.unlink()
            next_json.unlink(missing_ok=True)
    elif next_json.exists():
        if (run_dir / f"{LATEST}.pt").exists() and not (run_dir / f"{LATEST}.json").exists():
            _move(run_dir, NEXT, LATEST, ".json")  # killed before the last step
        else:
            next_json.unlink()


def save(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the latest checkpoint; the former latest becomes the previous one."""
    finish_rotation(run_dir)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "epoch": state.get("epoch")}
    record["stage"] = state.get("stage")
    atomic_write_bytes(run_dir / f"{NEXT}.pt", data)
    atomic_write_json(run_dir / f"{NEXT}.json", record)
    _rotate(run_dir)
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
    if run_dir.is_dir():
        finish_rotation(run_dir)
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
    if path.name != f"{LATEST}.pt":  # the latest one is damaged (a backup's defect is quiet)
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
