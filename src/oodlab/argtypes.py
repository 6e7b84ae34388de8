"""Argument types of the command line: each refuses a bad value in one line (through
``argparse``), so nothing starts with a batch size of 0, a negative worker count or a seed
list like ``0,,1``."""

from __future__ import annotations

import argparse
from pathlib import Path

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes)."""
    value = _int(text, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 1")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (worker counts, seeds)."""
    value = _int(text, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 0")
    return value


def seed_list(text: str) -> tuple[int, ...]:
    """Comma-separated seeds >= 0, e.g. ``0,1,2``."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected comma-separated integers >= 0 such as 0,1,2"
        )
    seeds = []
    for part in parts:
        try:
            seeds.append(nonnegative_int(part))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"got {text!r}, expected comma-separated integers >= 0 such as 0,1,2"
            ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"got {text!r}: a seed is repeated")
    return tuple(seeds)


def device_name(text: str) -> str:
    """A device name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    from oodlab.config import valid_device

    if not valid_device(text):
        raise argparse.ArgumentTypeError(f"got {text!r}, expected {DEVICES}")
    return text


def folder(text: str) -> Path:
    """A folder path (not the empty string)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("got an empty path, expected a folder")
    return Path(text)


def _int(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected {expected}") from None
