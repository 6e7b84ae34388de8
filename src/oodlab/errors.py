"""The small exception hierarchy of oodlab.

Every message is one line: what was given, what was expected, and how to fix it.
The command line prints ``error: <message>`` for any :class:`OodlabError` and exits
non-zero without a traceback.
"""

from __future__ import annotations

import errno
import re


class OodlabError(Exception):
    """Base class of every error oodlab raises on purpose."""


class ConfigError(OodlabError, ValueError):
    """A configuration key is unknown, has the wrong type or an invalid value."""


class UnknownNameError(OodlabError, KeyError):
    """A registry lookup used a name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(OodlabError, RuntimeError):
    """A score was used before ``fit``."""


class DataError(OodlabError, ValueError):
    """Input data is degenerate or malformed (empty, NaN, length mismatch, one class only)."""


class DatasetNotFoundError(OodlabError, FileNotFoundError):
    """A dataset folder or file is missing; the message names the expected layout and source."""


class ChecksumError(OodlabError, ValueError):
    """A file's checksum does not match the published one."""


class CheckpointError(OodlabError, RuntimeError):
    """A checkpoint is missing, truncated, corrupted, or does not fit the model."""


class TrainingDivergedError(OodlabError, RuntimeError):
    """The loss (or the weights) of a training run became NaN or infinite."""


_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full; free space or choose a folder on another disk",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another folder",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a file of that name is in the way; choose another path",
    errno.EISDIR: "it is a folder, a file was expected",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the path is too long",
}


def describe_error(exc: BaseException) -> str:
    """One line for any exception: the message of an oodlab error (unwrapped from a DataLoader
    worker's traceback when it was raised in a worker), or the path and reason of an OS error."""
    if isinstance(exc, OSError) and not isinstance(exc, OodlabError) and exc.filename:
        target = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
        reason = _ERRNO_HINTS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
        return f"cannot use {target}: {reason}"
    text = str(exc)
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep its last line
        lines = [line for line in text.splitlines() if line.strip()]
        text = re.sub(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ", "", lines[-1].strip())
    text = " ".join(text.split())
    return text or type(exc).__name__
