"""The cluster environment: under SLURM (one task per device, started by srun) Lightning's SLURMEnvironment
reads ranks and the master address from SLURM's variables (global rank SLURM_PROCID, node rank SLURM_NODEID,
the master the first host of SLURM_JOB_NODELIST, the port from the job id). Its own auto-requeue is switched
off: it writes a checkpoint inside the signal handler, in the middle of a step; RequeueOnSignal does it at a
step boundary. Before any process group exists, the ranks of a multi-rank job check that they reach the master
(distributed/preflight.py), so that nodes that cannot talk fail within that check's timeout, naming the node."""
from __future__ import annotations

import os
import re
import socket
import subprocess

from lightning.pytorch.plugins.environments import SLURMEnvironment

from lit_diffusion.distributed.preflight import check_rendezvous


def slurm_plugins(preflight_timeout_seconds: float | None = None) -> list:
    """[SLURMEnvironment(auto_requeue=False)] inside a SLURM job step (not an interactive one), else []. With a
    timeout, a job of more than one rank first runs the network pre-flight (every rank reaches the master)."""
    if not SLURMEnvironment.detect():
        return []
    environment = SLURMEnvironment(auto_requeue=False)
    if preflight_timeout_seconds and environment.world_size() > 1:
        check_rendezvous(environment.main_address, environment.main_port, environment.global_rank(),
                         environment.world_size(), socket.gethostname(), node_of_rank,
                         timeout=preflight_timeout_seconds)
    return [environment]


def job_nodes() -> list[str]:
    """The hosts of this job, in SLURM's order (SLURM_JOB_NODELIST expanded)."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST") or ""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return nodelist.split(",") if nodelist and "[" not in nodelist else [nodelist] if nodelist else []


def tasks_per_node() -> list[int]:
    """SLURM_TASKS_PER_NODE expanded: "2(x3),1" -> [2, 2, 2, 1]."""
    counts: list[int] = []
    for part in (os.environ.get("SLURM_TASKS_PER_NODE") or "").split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match:
            counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def node_of_rank(rank: int) -> str:
    """The host that runs `rank` (SLURM's default block distribution: ranks fill a node, then the next)."""
    nodes, counts = job_nodes(), tasks_per_node()
    first = 0
    for node, count in zip(nodes, counts):
        if rank < first + count:
            return node
        first += count
    return "an unknown node"
