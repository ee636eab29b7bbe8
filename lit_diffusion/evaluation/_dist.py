"""torch.distributed helpers for evaluation: rank/world (from distributed.process), and gathering rows of different counts.

Everything works without an initialised process group (a single process is rank 0 of 1). Tensors
travel on the backend's device: the current CUDA device for NCCL, the CPU otherwise (gloo).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from lit_diffusion.distributed.process import process_group


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """The process group's (rank, world size); (0, 1) without one, even under a launcher: the gathers here
    need the group, so without it each process evaluates everything."""
    return process_group() or (0, 1)


def comm_device() -> torch.device:
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [start, stop) of n that rank takes (contiguous, sizes differ by at most 1)."""
    return rank * n // world, (rank + 1) * n // world


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (n_r, ...) of every rank, in rank order, on every rank (returned on t's device).

    Row counts may differ between ranks; trailing dimensions and dtype must agree.
    """
    if not is_distributed():
        return t
    device, world = comm_device(), dist.get_world_size()
    dtype = t.dtype
    x = t.to(device)
    if dtype == torch.bool:
        x = x.to(torch.uint8)
    counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([x.shape[0]], dtype=torch.int64, device=device))
    counts = [int(c.item()) for c in counts]
    most = max(counts)
    padded = torch.zeros((most, *x.shape[1:]), dtype=x.dtype, device=device)
    padded[:x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    out = torch.cat([p[:c] for p, c in zip(parts, counts)])
    return out.to(dtype).to(t.device)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects; a no-op in one process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=comm_device())
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()
