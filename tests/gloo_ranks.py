"""For the tests that start real torch.distributed ranks (gloo on CPU) as separate processes: each runs
`python SCRIPT RANK WORLD PORT *ARGS` and joins the group at tcp://127.0.0.1:PORT."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(script: Path, args: list[str], world: int = 2, timeout: float = 300, **env: str) -> list[str]:
    """Start every rank (one thread each, `env` added to the environment), wait, check each exited 0 (else
    fail with the tail of its stderr) and return their stdouts in rank order."""
    port = str(free_port())
    environment = dict(os.environ, OMP_NUM_THREADS="1", **env)
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(world), port, *map(str, args)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
             for rank in range(world)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-3000:]
            outs.append(out)
    finally:
        for p in procs:  # a failed or hung rank leaves the others waiting on a collective
            if p.poll() is None:
                p.kill()
    return outs
