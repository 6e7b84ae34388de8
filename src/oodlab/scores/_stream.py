"""Row chunks of (possibly memory-mapped) output tensors, for fits in one streaming pass.

The extraction cache (:mod:`oodlab.eval.cache`) maps its arrays from disk. A fit that walks
the training outputs with :func:`row_chunks` touches ``rows`` rows at a time and, for a
tensor the cache marked as file-backed, hands the pages of each finished chunk back to the
kernel (``madvise(MADV_DONTNEED)``), so the resident memory of a fit over a 10 GB bank stays
at one chunk instead of growing to the whole file. For any other tensor the chunks are plain
views and nothing is released.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import weakref
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

#: Bytes of float64 per chunk (16384 rows of 2048 features); tests lower it to force chunking.
CHUNK_BYTES = 256 << 20

_FILE_BACKED: dict[int, weakref.ref[Tensor]] = {}
_MADV_DONTNEED = 4
_LIBC = None


def mark_file_backed(tensor: Tensor) -> Tensor:
    """Record that ``tensor`` views a read-only file mapping whose pages may be dropped."""
    key = id(tensor)
    _FILE_BACKED[key] = weakref.ref(tensor, lambda _ref: _FILE_BACKED.pop(key, None))
    return tensor


def is_file_backed(tensor: Tensor) -> bool:
    ref = _FILE_BACKED.get(id(tensor))
    return ref is not None and ref() is tensor


def chunk_rows(row_bytes: int, budget: int | None = None) -> int:
    """Rows per chunk so that one chunk of ``row_bytes`` per row stays near ``budget`` bytes."""
    return max(1, (CHUNK_BYTES if budget is None else budget) // max(1, row_bytes))


def row_chunks(tensor: Tensor, rows: int | None = None) -> Iterator[Tensor]:
    """Consecutive row blocks of ``tensor`` (views); pages of file-backed ones are released.

    Args:
        tensor: ``(N, ...)`` tensor, e.g. cached training features.
        rows: rows per block; ``None`` picks about 256 MiB of float64 per block.
    """
    if rows is None:
        rows = chunk_rows(8 * max(1, tensor[0].numel() if len(tensor) else 1))
    release = is_file_backed(tensor) and tensor.is_contiguous()
    for start in range(0, len(tensor), rows):
        block = tensor[start : start + rows]
        yield block
        if release:
            _release(block)


def _release(block: Tensor) -> None:
    """``madvise(MADV_DONTNEED)`` on the whole pages inside ``block`` (Linux only)."""
    global _LIBC
    if not sys.platform.startswith("linux") or block.device.type != "cpu":
        return
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = mmap.PAGESIZE
    start = block.data_ptr()
    end = start + block.numel() * block.element_size()
    first, last = -(-start // page) * page, end // page * page
    if last > first:
        _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED)


def gather_rows(tensor: Tensor, index: Tensor, rows: int | None = None) -> Tensor:
    """``tensor[index]`` for sorted ``index``, read chunk by chunk (no full-size temporary)."""
    index = index.to(torch.long).cpu()
    if rows is None:
        rows = chunk_rows(8 * max(1, tensor[0].numel() if len(tensor) else 1))
    out = torch.empty((len(index), *tensor.shape[1:]), dtype=tensor.dtype)
    filled = 0
    for start, block in zip(range(0, len(tensor), rows), row_chunks(tensor, rows), strict=False):
        lo = int(torch.searchsorted(index, start))
        hi = int(torch.searchsorted(index, start + len(block)))
        if hi > lo:
            out[filled : filled + hi - lo] = block[index[lo:hi] - start].cpu()
            filled += hi - lo
    return out.to(tensor.device)


def streaming_percentile(
    tensor: Tensor, percentile: float, *, sample_values: int = 1 << 24, seed: int = 0
) -> float:
    """``np.percentile(tensor.ravel(), percentile)`` (linear interpolation), exactly, in chunks.

    A seeded sample of whole rows (about ``sample_values`` entries) brackets the two order
    statistics the linear interpolation needs; one pass over the chunks then counts the
    values below the bracket and keeps only those inside it (in their own dtype), which are
    sorted to read the exact order statistics. If the bracket misses (the sampled rows are
    not representative), it is widened fourfold and the pass repeated, so the result is always
    the exact percentile of every entry: no estimation error, only the float64 rounding of
    the final interpolation. Memory: the sample plus the values inside the bracket, about
    ``8·sqrt(q(1 − q)/rows sampled)`` of all entries (2.7 % at ImageNet size).
    """
    n = tensor.numel()
    if n == 0:
        raise ValueError("percentile of an empty tensor")
    position = percentile / 100 * (n - 1)
    low_rank, high_rank = int(np.floor(position)), int(np.ceil(position))
    rows = len(tensor)
    per_row = max(1, n // max(1, rows))
    generator = torch.Generator().manual_seed(seed)
    take = max(1, min(rows, sample_values // per_row))
    chosen = torch.randperm(rows, generator=generator)[:take].sort().values
    sample = gather_rows(tensor, chosen).reshape(-1).float().cpu().numpy()
    q = percentile / 100
    margin = 4 * float(np.sqrt(max(q * (1 - q), 1e-6) / take)) + 1e-4
    while True:
        lo = float(np.quantile(sample, q - margin)) if q - margin > 0 else -np.inf
        hi = float(np.quantile(sample, q + margin)) if q + margin < 1 else np.inf
        below = at_lo = at_hi = 0
        inside: list[Tensor] = []
        for block in row_chunks(tensor):
            values = block.reshape(-1)
            below += int((values < lo).sum())
            at_lo += int((values == lo).sum())
            at_hi += int((values == hi).sum()) if hi != lo else 0
            inside.append(values[(values > lo) & (values < hi)].cpu())
        middle = torch.cat(inside).double().sort().values
        if below <= low_rank and high_rank < below + at_lo + len(middle) + at_hi:
            ordered = torch.cat(
                [
                    torch.full((min(at_lo, high_rank - below + 1),), lo, dtype=torch.float64),
                    middle[: high_rank - below + 1],
                    torch.full((at_hi,), hi, dtype=torch.float64),
                ]
            )
            a, b = float(ordered[low_rank - below]), float(ordered[high_rank - below])
            t = position - low_rank
            return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)
        margin *= 4
