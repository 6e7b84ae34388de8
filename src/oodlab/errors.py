"""The small exception hierarchy of oodlab.

Every message is one line: what was given, what was expected, and how to fix it.
The command line prints ``error: <message>`` for any :class:`OodlabError` and exits
non-zero without a traceback.
"""

from __future__ import annotations


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
