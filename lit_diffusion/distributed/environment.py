"""The cluster environment: under SLURM (one task per device, started by srun) Lightning's SLURMEnvironment
reads ranks and the master address from SLURM's variables. Its own auto-requeue is switched off: it writes a
checkpoint inside the signal handler, in the middle of a step; RequeueOnSignal does it at a step boundary."""
from __future__ import annotations

from lightning.pytorch.plugins.environments import SLURMEnvironment


def slurm_plugins() -> list:
    """[SLURMEnvironment(auto_requeue=False)] inside a SLURM job step (not an interactive one), else []."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
