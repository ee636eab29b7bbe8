"""The resources of a SLURM job (the `lit-diffusion slurm submit|sweep` options), checked before anything runs."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # minutes | M:S | H:M:S | D-H[:M[:S]]


@dataclass
class JobOptions:
    nodes: int = 1
    gpus_per_node: int = 0
    """GPUs per node; one task (process) is started per GPU. 0: CPU-only tasks."""
    tasks_per_node: int | None = None
    """processes per node; default: gpus_per_node (or 1 without GPUs)."""
    cpus_per_task: int | None = None
    """CPUs of each task; default: the config's `data.num_workers + 1` (the loader workers and the training
    process), so that a real cluster does not starve the loader."""
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    signal_seconds: int = 120
    """SIGUSR1 this many seconds before the time limit: checkpoint and requeue."""
    job_name: str = "lit-diffusion"

    def __post_init__(self) -> None:
        def bad(option: str, why: str):
            raise ValueError(f"--{option.replace('_', '-')}: {why}")

        for name in ("nodes", "cpus_per_task"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad(name, f"must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_node < 0:
            bad("gpus_per_node", f"must be >= 0, got {self.gpus_per_node}")
        if self.tasks_per_node is not None:
            if self.tasks_per_node < 1:
                bad("tasks_per_node", f"must be >= 1, got {self.tasks_per_node}")
            if self.gpus_per_node and self.tasks_per_node != self.gpus_per_node:
                bad("tasks_per_node", f"is one per GPU: {self.tasks_per_node} contradicts --gpus-per-node "
                    f"{self.gpus_per_node}")
        if not _TIME.match(self.time):
            bad("time", f"{self.time!r} is not a SLURM time (MINUTES, H:M:S or D-H:M:S)")
        if self.signal_seconds < 1:
            bad("signal_seconds", f"must be >= 1, got {self.signal_seconds}")
        if not re.match(r"^[\w.-]+$", self.job_name):
            bad("job_name", f"{self.job_name!r}: use letters, digits, '.', '_' and '-'")

    def with_loader_workers(self, workers: int) -> tuple["JobOptions", str | None]:
        """These options with `cpus_per_task` set for `workers` loader workers per task (when not given), and a
        warning when the CPUs asked for are fewer than the workers plus the training process."""
        wanted = workers + 1
        if self.cpus_per_task is None:
            return replace(self, cpus_per_task=wanted), None
        if self.cpus_per_task < wanted:
            return self, (f"--cpus-per-task {self.cpus_per_task} is fewer than the config's data.num_workers + 1 = "
                          f"{wanted}: the {workers} loader worker(s) and the training process will share "
                          f"{self.cpus_per_task} CPU(s) and may starve the loader (ask for --cpus-per-task "
                          f"{wanted}, or lower --data.num_workers)")
        return self, None

    @property
    def ntasks_per_node(self) -> int:
        return self.tasks_per_node or self.gpus_per_node or 1

    def trainer_overrides(self) -> list[str]:
        """The Trainer settings that must agree with the allocation (one process per task)."""
        return ["--trainer.num_nodes", str(self.nodes), "--trainer.devices", str(self.ntasks_per_node)]
