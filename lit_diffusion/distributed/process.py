"""Which process am I: rank, world size, local rank and this rank's device, decided in one place.

The answer comes from the initialised torch.distributed process group when there is one; before that (or
without one) from the launcher's environment: torchrun (RANK, WORLD_SIZE, LOCAL_RANK), srun (SLURM_PROCID,
SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID), or Lightning's own spawned processes (LOCAL_RANK, NODE_RANK).
torch and os only: every folder may import it without pulling Lightning in.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class Process:
    rank: int  # global rank
    world_size: int
    local_rank: int  # rank on this node: the index of its GPU
    node_rank: int

    @property
    def is_global_zero(self) -> bool:
        """Rank 0 of the job (every one of its coordinates 0, as the launchers number them)."""
        return self.rank == 0 and self.local_rank == 0 and self.node_rank == 0


def _env_int(*names: str) -> Optional[int]:
    """The first of `names` set in the environment, as an int (an empty value counts as unset)."""
    for name in names:
        value = os.environ.get(name, "")
        if value != "":
            return int(value)
    return None


def process_group() -> Optional[tuple[int, int]]:
    """(rank, world size) of the initialised torch.distributed process group, or None without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def launched() -> Process:
    """This process as its launcher described it in the environment (a lone process is rank 0 of 1)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun (also Lightning under torchrun)
        rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    elif "SLURM_PROCID" in os.environ and "SLURM_NTASKS" in os.environ:  # srun
        rank, world = _env_int("SLURM_PROCID"), _env_int("SLURM_NTASKS")
    else:  # a lone process, or one Lightning spawned (it sets LOCAL_RANK / NODE_RANK, the rank comes later)
        rank, world = _env_int("RANK", "SLURM_PROCID"), _env_int("WORLD_SIZE", "SLURM_NTASKS")
    local = _env_int("LOCAL_RANK", "SLURM_LOCALID") or 0
    node = _env_int("NODE_RANK", "SLURM_NODEID") or 0
    return Process(rank or 0, world or 1, local, node)


def current() -> Process:
    """This process: the process group's rank and world size when it is initialised, else the launcher's."""
    process, group = launched(), process_group()
    if group is None:
        return process
    return Process(group[0], group[1], process.local_rank, process.node_rank)


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process (see `current`)."""
    process = current()
    return process.rank, process.world_size


def device(name: Optional[str] = None) -> torch.device:
    """The torch device of this rank: `name` (default cuda when available, else cpu), and for cuda without an
    index this rank's GPU (its local rank)."""
    name = name or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        return torch.device("cuda", current().local_rank)
    return torch.device(name)


def join_process_group(device: torch.device) -> Process:
    """Under a launcher with several ranks, join its process group (NCCL on GPUs, gloo on the CPU) unless
    already in one; returns this process."""
    if launched().world_size > 1 and process_group() is None:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return current()
