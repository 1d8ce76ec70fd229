"""Data-parallel learning on ``torch.distributed`` (started by ``torchrun``).

Each rank plays its own share of the env groups, samples its own completions and
computes gradients on them; DDP averages the gradients, so every rank takes the same
optimizer step. The learner weights each rank's loss by its share of the *global* token
(or sequence) count, so a run on N ranks equals one process on the same global batch.
Metrics are averaged across ranks; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes metrics, checkpoints and plots."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world > 1


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


def all_reduce_sum(value: float, info: DistInfo) -> float:
    """The sum of ``value`` over ranks."""
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Each metric averaged over ranks (every rank must pass the same keys)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world for k, v in zip(keys, t.tolist(), strict=True)}


def all_gather_list(values: list[Any], info: DistInfo) -> list[Any]:
    """Every rank's ``values``, concatenated in rank order (the same list on every rank)."""
    if not info.enabled:
        return list(values)
    gathered: list[list[Any] | None] = [None] * info.world
    dist.all_gather_object(gathered, list(values))
    return [v for part in gathered for v in (part or [])]


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process)."""
    if info.enabled:
        dist.barrier()
