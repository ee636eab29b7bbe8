"""Helpers of the launch tests: the tiny training job's overrides, submitting, waiting for jobs, job logs."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lit_diffusion.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
CLUSTER_NODES = 2  # the local cluster of the tests: nodes litd-n1 and litd-n2 (slurm/local-network.sh)
EXPERIMENTS = REPO / "experiments"
BASE_CONFIGS = [str(EXPERIMENTS / "digits/dit.yaml"), str(EXPERIMENTS / "objectives/flow_matching.yaml")]


def configs() -> list[str]:
    return [a for c in BASE_CONFIGS for a in ("-c", c)]


def fit_overrides(shards, root, max_images: int, *extra: str) -> list[str]:
    """A tiny CPU job: DiT debug-sized (from the digits config) on 16x16 digits, 32 images a step."""
    return ["--data.train_shards", str(shards), "--data.num_workers", "0", "--data.batch_size", "32",
            "--model.max_images", str(max_images), "--trainer.accelerator", "cpu", "--trainer.default_root_dir",
            str(root), "--trainer.log_every_n_steps", "1", "--preview_every_n_steps", "0",
            "--checkpoint_every_n_steps", "1000", "--model.ema_decay", "0.9", *extra]


def slurm(*argv: str) -> int:
    return cli_main(["slurm", *argv])


def job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    states = [f.split("=", 1)[1] for f in out.split() if f.startswith("JobState=")]
    return ",".join(states) or "GONE"


def wait_for_jobs(job_id: str, timeout: float = 240) -> str:
    """Wait until no task of this job (or array) is pending or running; returns the final state(s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.split()
        if not queued:
            return job_state(job_id)
        time.sleep(0.5)
    subprocess.run(["scancel", job_id])
    raise TimeoutError(f"job {job_id} still {job_state(job_id)} after {timeout} s")


def job_log(run_dir: Path, logs: str = "slurm/logs") -> str:
    return "\n".join(p.read_text() for p in sorted(Path(run_dir, logs).glob("*.out")))
