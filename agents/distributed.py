"""Data-parallel learning on ``torch.distributed`` (started by ``torchrun``).

Each rank plays its own share of the env groups, samples its own completions and
computes gradients on them; DDP averages the gradients, so every rank takes the same
optimizer step. The learner weights each rank's loss by its share of the *global* token
(or sequence) count, so a run on N ranks equals one process on the same global batch.
Metrics are averaged across ranks; only rank 0 writes files.

FSDP2 (``fully_shard``) is the same data-parallel loop for models that do not fit on one
device: every transformer block (and then the root) keeps only its shard of the weights,
gradients and AdamW states, and gathers the full weights for the forward and backward
of that block. Three things follow, all handled here and in the learner:

- Sampling needs the whole model for many forwards of different counts on different
  ranks, so ``full_weights`` gathers every block once (a collective every rank enters
  together) and keeps it gathered until the context exits.
- Every forward of the learner is a collective, so every rank runs the same number of
  micro-batches (a rank with fewer rows runs weightless ones).
- Checkpoints and weight pushes need the full tensors: ``full_state_dict`` gathers them
  on every rank (a collective) and the caller decides who writes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


def all_reduce_max(value: float, info: DistInfo) -> float:
    """The largest ``value`` over ranks."""
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


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


def close_distributed(info: DistInfo, *, wait: bool = True) -> None:
    """Leave the process group, so that no rank exits inside it.

    A rank that exits inside it can abort in gloo's teardown ("terminate called without
    an active exception") while another still writes. ``wait`` first waits for every
    rank (the normal end); after an error, a rank leaves at once rather than wait on
    ranks that may never come.
    """
    if not info.enabled or not dist.is_initialized():
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()


# --- FSDP2 ---------------------------------------------------------------------------------

#: Class-name endings of the blocks that get their own FSDP unit (besides a model's own
#: ``_no_split_modules``): text decoder layers, vision encoder layers and blocks.
BLOCK_SUFFIXES = ("DecoderLayer", "EncoderLayer", "VisionBlock")


def shard_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The outermost blocks ``shard_model`` makes FSDP units of (the root excluded)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks: dict[str, torch.nn.Module] = {}
    for name, module in model.named_modules():
        kind = type(module).__name__
        inside = any(name.startswith(f"{outer}.") for outer in blocks)
        if name and not inside and (kind in names or kind.endswith(BLOCK_SUFFIXES)):
            blocks[name] = module
    return list(blocks.values())


def shard_model(
    model: torch.nn.Module, compute_dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """``fully_shard`` every transformer block, then the root (in place; returns it).

    With ``compute_dtype`` (bf16) FSDP2 casts the gathered parameters to it for compute
    and reduces gradients in fp32 (``MixedPrecisionPolicy``); the sharded master
    parameters and the AdamW states keep the model's own dtype (fp32).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy()
    if compute_dtype is not None and compute_dtype != torch.float32:
        policy = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    blocks = shard_blocks(model)
    if not blocks:
        raise ValueError(
            f"FSDP: found no transformer block in {type(model).__name__} (looked for "
            f"_no_split_modules and class names ending in {BLOCK_SUFFIXES})"
        )
    for block in blocks:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    # FSDP picks its root at the first forward; transformers' generate may call the vision
    # tower alone first, so settle the root now
    model._get_fsdp_state()._lazy_init()  # type: ignore[operator]
    return model


def fsdp_units(model: torch.nn.Module) -> list[Any]:
    """The FSDP2 modules inside ``model`` (empty when it is not sharded)."""
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def full_weights(model: torch.nn.Module) -> Iterator[None]:
    """Keep a sharded model's full weights gathered inside the block (no-op otherwise).

    Every rank must enter together (the gathering is a collective); inside, forwards run
    no collectives, so ranks may sample different numbers of tokens.
    """
    units = fsdp_units(model)
    for unit in units:
        unit.set_reshard_after_forward(False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.set_reshard_after_forward(True)
            unit.reshard()


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full CPU tensors of the weights, named as in ``state_dict`` (collective if sharded)."""
    if not fsdp_units(model):
        return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=False)
    full = get_model_state_dict(model, options=options)
    return {k: torch.as_tensor(v).cpu().contiguous() for k, v in full.items()}


def iter_full_weights(
    model: torch.nn.Module, dtype: torch.dtype | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights one tensor at a time, on their device, named as in ``state_dict``.

    A sharded parameter is gathered when its turn comes (a collective: every rank must
    consume the iterator in full, in the same order) and cast to ``dtype``; nothing is
    copied to the CPU and at most one gathered tensor is alive at a time, so a weight
    push needs no full copy of the model on any rank.
    """
    for name, tensor in model.state_dict().items():
        full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
        yield name, full.detach().to(dtype) if dtype is not None else full.detach()


def full_optimizer_state_dict(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """The optimizer's state keyed by parameter name, with full tensors.

    One layout for one process, DDP and FSDP (``torch.distributed.checkpoint``'s), so a
    checkpoint of any of them resumes under any other. Collective if the model is sharded.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=False)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
) -> None:
    """Load full weights and optimizer state (as the ``full_*`` functions return them)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    if fsdp_units(model):
        set_model_state_dict(model, dict(weights), options=options)
    else:
        model.load_state_dict(weights)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)
