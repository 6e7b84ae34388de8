"""Extraction shared across the processes of a torchrun job; rank 0 gets the whole outputs.

``torchrun --nproc_per_node=N -m oodlab.cli eval …`` runs one process per device. Each
dataset is cut into N contiguous runs of *whole batches* (no padding, no duplicated sample:
rank r takes batches ``⌊r·B/N⌋ … ⌊(r+1)·B/N⌋ − 1`` of the ``B`` batches a single process
would run), so every batch holds exactly the samples it holds in a single-process run and the
outputs are bit-identical to it. Each rank streams its shard into its own cache entry; after a
barrier rank 0 concatenates the shards, in order and chunk by chunk, into the dataset's
ordinary cache entry (the one a single-process run reads and writes) and removes them; the
other ranks return ``None`` and take no further part (rank 0 fits, scores and reports).
An entry already complete is read by rank 0 alone and nobody runs the network.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Subset

from oodlab.distributed import DistInfo, barrier
from oodlab.errors import ConfigError, DataError
from oodlab.eval.cache import OutputsWriter, entry_dir, load_entry
from oodlab.eval.extract import (
    ExtractConfig,
    _collect,
    config_key,
    extract,
    resolve_device,
)
from oodlab.scores._stream import row_chunks
from oodlab.types import Outputs


def current_info() -> DistInfo:
    """This process's place in an initialised process group (rank 0 of 1 otherwise)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_rank(), dist.get_world_size())
    return DistInfo()


def batch_shard(n: int, batch_size: int, rank: int, world_size: int) -> range:
    """The sample indices of ``rank``: a contiguous run of whole batches (the last may be short).

    Shards differ by at most one batch; together they cover ``range(n)`` once, in order.
    """
    batches = -(-n // batch_size)
    first, last = batches * rank // world_size, batches * (rank + 1) // world_size
    return range(min(n, first * batch_size), min(n, last * batch_size))


def extract_sharded(
    model: nn.Module,
    dataset: Dataset[Any],
    config: ExtractConfig,
    *,
    name: str = "dataset",
    model_key: str | None = None,
    on_forward: Callable[[str], None] | None = None,
    info: DistInfo | None = None,
) -> Outputs | None:
    """:func:`~oodlab.eval.extract.extract` across the ranks; the outputs on rank 0, else None."""
    info = info or current_info()
    if not info.enabled:
        return extract(
            model, dataset, config, name=name, model_key=model_key, on_forward=on_forward
        )
    if config.cache_dir is None:
        raise ConfigError(
            "distributed evaluation shares its shards through the extraction cache; "
            "give a cache folder (--cache-dir) that every process can write"
        )
    from oodlab.eval.extract import model_fingerprint

    model.to(resolve_device(config.device))
    model_key = model_key or model_fingerprint(model)
    key = config_key(dataset, config)
    entry = entry_dir(config.cache_dir, model_key, key)
    flag = [load_entry(entry, key) if info.is_main else None]
    have = [flag[0] is not None]
    dist.broadcast_object_list(have, src=0)
    if have[0]:
        return flag[0] if info.is_main else None
    if on_forward is not None:
        on_forward(name)
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise DataError(f"dataset {name!r} is empty; nothing to evaluate")
    shard = batch_shard(n, config.batch_size, info.rank, info.world_size)
    shard_keys = [f"{key}|shard {r} of {info.world_size}" for r in range(info.world_size)]
    shard_dirs = [entry_dir(config.cache_dir, model_key, k) for k in shard_keys]
    if len(shard):
        _collect(
            model, Subset(dataset, list(shard)), config, desc=f"extract {name} [{info.rank}]",
            entry=shard_dirs[info.rank], key=shard_keys[info.rank],
        )  # fmt: skip
    barrier(info)
    result = _merge(entry, key, shard_dirs, shard_keys, n, config) if info.is_main else None
    barrier(info)
    return result


def _merge(
    entry: Path,
    key: str,
    shard_dirs: list[Path],
    shard_keys: list[str],
    rows: int,
    config: ExtractConfig,
) -> Outputs:
    """Concatenate the shard entries (in rank order, chunk by chunk) into the full entry."""
    writer = OutputsWriter(rows, entry, key, config.feature_dtype)
    head: tuple[Any, Any] = (None, None)
    try:
        for directory, shard_key in zip(shard_dirs, shard_keys, strict=True):
            if not (directory / "meta.json").is_file():
                continue  # a rank whose shard was empty
            part = load_entry(directory, shard_key)
            if part is None:
                raise DataError(f"the shard {directory} of another process is missing or corrupt")
            head = (part.head_weight, part.head_bias)
            names = {"logits": part.logits, "features": part.features, "labels": part.labels}
            names.update({f"extra.{k}": v for k, v in part.extras.items()})
            starts = range(0, len(part), 4096)
            for start in starts:
                writer.append({k: v[start : start + 4096] for k, v in names.items()})
            for array in names.values():  # drop the pages of the finished shard
                for _ in row_chunks(array):
                    pass
        outputs = writer.finish(*head)
    except BaseException:
        writer.abort()
        raise
    for directory in shard_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    return outputs
