"""Atomic writes, safe loading, and hashing helpers.

Everything oodlab writes (checkpoints, caches, results) goes through
:func:`atomic_write_bytes` or one of its wrappers: the bytes land in a temporary
file beside the target, are flushed to disk, and replace the target with one
``os.replace``, so a crash never leaves a half-written file behind. Files get the mode an
ordinary ``open`` would give them (0644 under umask 022), not ``mkstemp``'s 0600, so that
teammates and TensorBoard servers can read a run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from oodlab.errors import CheckpointError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then atomically move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal mode
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # the rename itself survives a power cut
    return path


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask: from /proc on Linux (no change to the process), else by setting it
    and restoring it at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n"
    )


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    """``torch.save`` through a temporary file, so readers never see a partial checkpoint."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a ``torch.save`` file with ``weights_only=True``; unreadable files raise one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a .pt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # torch's weights-only advice does not apply: the bytes are bad
            raise CheckpointError(
                f"cannot read checkpoint {path}: it is truncated, corrupted or not a torch file"
            ) from None
        raise CheckpointError(
            f"{path} is not a plain tensor checkpoint: it holds Python objects ({found[1]}) that "
            "oodlab does not unpickle (only tensors, numbers, strings, lists and dicts); re-save "
            "it where it "
            "was made with torch.save(model.state_dict(), path)"
        ) from None
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path} (truncated, corrupted, or not a weights-only "
            f"torch file): {first_line}"
        ) from exc


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_hash(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, shapes, dtypes and bytes), sorted by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str((tuple(data.shape), str(data.dtype))).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file oodlab wrote; a truncated or corrupted one raises one line naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} does not exist") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"{what} {path} is truncated or corrupted ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); delete it and rerun the step that writes it"
        ) from None
