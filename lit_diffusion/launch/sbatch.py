"""Calls to SLURM's commands; a failure is reported with SLURM's own message."""
from __future__ import annotations

import shutil
import subprocess


class SlurmError(RuntimeError):
    pass


def _run(command: list[str], what: str, **options) -> str:
    if shutil.which(command[0]) is None:
        raise SlurmError(f"{what}: `{command[0]}` is not on PATH (no SLURM client here; `--dry-run` prints the "
                         "script without submitting, slurm/start-local-cluster.sh starts a local cluster)")
    result = subprocess.run(command, capture_output=True, text=True, **options)
    if result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}")
        raise SlurmError(f"{what} failed: {message}")
    return result.stdout


def check_partition(partition: str) -> None:
    """Fail before submitting when the partition does not exist (SLURM's message)."""
    _run(["scontrol", "show", "partition", partition], f"--partition {partition}")


def submit(script: str, *, workdir: str) -> str:
    """sbatch the script (given on stdin); returns the job id."""
    return _run(["sbatch", "--parsable"], "sbatch", input=script, cwd=workdir).strip().split(";")[0]


def job_states(job_id: str) -> dict[str, str]:
    """{job or array-task id: state} from `scontrol show job` (pending, running and recently finished)."""
    states: dict[str, str] = {}
    if shutil.which("scontrol") is None:
        return states
    result = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    for line in result.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        array_task = fields.get("ArrayTaskId")
        key = f"{fields.get('ArrayJobId')}_{array_task}" if array_task else fields.get("JobId", job_id)
        states[key] = fields.get("JobState", "UNKNOWN")
    return states
