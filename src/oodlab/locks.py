"""One writer per folder: an exclusive ``fcntl.flock`` on ``FOLDER/.oodlab.lock``, held for the
whole run, and a check that an output folder can be written before any work starts.

A second process that asks for a held folder fails at once with one line naming the holder's
pid. The kernel drops the lock when its process dies, however it dies, so the file a killed run
leaves behind (with its dead pid) is a stale lock that the next run takes over without asking.
Taking a folder removes the ``.*.tmp`` files an interrupted atomic write left in it (no live
writer can own them then). Releasing removes the lock file (and the folder, when the lock
created it and nothing else was written); on acquiring, a check that the locked file is still
the one at the path keeps a release racing with a newcomer from letting two processes in.

Locks are re-entrant within one process (the bench holds its folder while it trains runs in
sub-folders, and a library caller may nest ``train`` in its own lock). ``flock`` needs a local
file system; on a network file system without it, the lock raises one line instead of
pretending.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from oodlab.errors import ConfigError, OodlabError

LOCK_NAME = ".oodlab.lock"
F = TypeVar("F", bound=Callable[..., Any])

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no locking, as before)
    fcntl = None  # type: ignore[assignment]


class FolderLockedError(OodlabError, RuntimeError):
    """Another live process holds the folder."""


_HELD: dict[Path, tuple[int, int, bool]] = {}  # folder -> (fd, depth, created by the lock)


def check_writable_folder(folder: str | Path, what: str = "output folder") -> Path:
    """One line unless ``folder`` is, or can be created as, a writable folder; changes nothing.

    Catches a path that is a file, lies under a file, or is on a read-only or forbidden place
    before any work is done (a full disk shows only when writing, and is one line then)."""
    path = Path(folder).expanduser()
    if str(folder) == "":
        raise ConfigError(f"the {what} is an empty path; pass a folder")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder; pass another path")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(
            f"{what} {path} cannot be created: {probe} is a file, not a folder; pass another path"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {path} cannot be written ({probe} is read-only or not yours); pass a "
            "folder you can write to"
        )
    return path


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    except OSError:
        return "unknown"
    return " on ".join(text[:2]) if text else "unknown"


def acquire(folder: str | Path, what: str = "run folder", hint: str = "--run-dir") -> Path:
    """Lock ``folder`` (created if missing) for this process; one line if another one holds it."""
    path = check_writable_folder(folder, what).resolve()
    if path in _HELD:
        fd, depth, created = _HELD[path]
        _HELD[path] = (fd, depth + 1, created)
        return path
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock_file = path / LOCK_NAME
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if fcntl is None:  # pragma: no cover
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise FolderLockedError(
                    f"{what} {path} is in use by another oodlab process (pid {holder}); wait "
                    f"for it to finish, or pass another {hint}"
                ) from None
            raise ConfigError(
                f"cannot lock {what} {path} ({exc.strerror}); use a folder on a local disk"
            ) from None
        try:  # the holder we waited for may have removed the file: lock the one at the path
            same = os.stat(lock_file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    _HELD[path] = (fd, 1, created)
    remove_stale_temporaries(path)  # ours now: what an interrupted write left goes
    return path


def release(folder: str | Path) -> None:
    """Undo one :func:`acquire` of ``folder`` by this process."""
    path = Path(folder).expanduser().resolve()
    if path not in _HELD:
        return
    fd, depth, created = _HELD[path]
    if depth > 1:
        _HELD[path] = (fd, depth - 1, created)
        return
    del _HELD[path]
    try:
        (path / LOCK_NAME).unlink(missing_ok=True)
    finally:
        os.close(fd)  # unlink first: a newcomer then finds no file, or a new one
    if created:  # only if empty: a run that failed before writing leaves no folder
        with contextlib.suppress(OSError):
            path.rmdir()


@contextmanager
def folder_lock(
    folder: str | Path, what: str = "run folder", hint: str = "--run-dir", enabled: bool = True
) -> Iterator[Path]:
    """``with folder_lock(run_dir):`` holds the folder for the block (a no-op if not enabled,
    e.g. on the non-main processes of a torchrun job)."""
    if not enabled:
        yield Path(folder)
        return
    path = acquire(folder, what, hint)
    try:
        yield path
    finally:
        release(path)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files an interrupted atomic write left in ``folder`` (call it
    only while holding the folder's lock, so no live writer owns them). Returns them."""
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for tmp in sorted(root.glob(".*.tmp")):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def locks_folder(
    argument: str, what: str = "run folder", hint: str = "--run-dir"
) -> Callable[[F], F]:
    """Decorator: the call holds the folder passed as ``argument`` (by name or position)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            folder = signature.bind(*args, **kwargs).arguments[argument]
            with folder_lock(folder, what, hint):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
