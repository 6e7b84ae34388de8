"""torchrun integration: read the environment torchrun sets, start and stop the process group.

Multi-GPU and multi-node runs are launched with PyTorch's own launcher, e.g.
``torchrun --nproc_per_node=4 -m oodlab.cli train CONFIG`` (add ``--nnodes``,
``--rdzv_endpoint`` for several nodes); nothing here spawns processes. The process group uses
NCCL on CUDA and gloo on the CPU; rank 0 alone logs and writes checkpoints, and each process
trains on ``batch_size / world_size`` images of every global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from oodlab.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def check_device_available(device: str) -> None:
    """One line when ``device`` names hardware this machine does not have (``cuda`` without a
    GPU, ``cuda:N`` past the GPU count, ``mps`` off macOS); ``auto`` and ``cpu`` always pass."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {device!r}: torch sees no CUDA GPU on this machine; use cpu or auto"
            )
        if index and int(index) >= count:
            raise ConfigError(
                f"device {device!r}: this machine has {count} CUDA GPU(s) (cuda:0 to "
                f"cuda:{count - 1}); pick one of them, or auto"
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available here; use cpu or auto")


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this process's CUDA device if there is one, else the CPU."""
    check_device_available(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    return torch.device(device)


def init_from_env(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group if torchrun started this process; returns (info, device)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return DistInfo(), resolve_device(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise ConfigError(
            "WORLD_SIZE > 1 but RANK / LOCAL_RANK are missing or not integers; launch "
            "multi-process runs with torchrun"
        ) from None
    info = DistInfo(rank, local_rank, world_size)
    target = resolve_device(device, info.local_rank)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return info, target


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op outside torchrun)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group (no-op outside torchrun)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
