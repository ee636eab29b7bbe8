"""The trainings of a comparison as one SLURM job array (suite `launcher: slurm`): one array task per
(objective, seed) that has not finished, each running `lit-diffusion fit -c TASK/config.yaml --ckpt_path last`
on the run's composed fit config, so a preempted task requeues and resumes. This process waits for the
array and then evaluates locally; started again while the array still runs, it waits for that array instead of
submitting a second one."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import yaml

from lit_diffusion.launch.configcheck import loader_workers
from lit_diffusion.launch.render import render
from lit_diffusion.launch.sbatch import job_states
from lit_diffusion.launch.submit import write_and_submit
from lit_diffusion.launch.sweep import MANIFEST, array_spec, read_manifest, write_manifest

# SLURM job states that are over (a task in any other state is pending, running or being requeued)
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}


def manifest_path(suite) -> Path:
    return Path(suite.out) / "slurm" / MANIFEST


def active_tasks(job_id: str) -> dict[str, str]:
    """{array task: state} of the tasks of this job that are not over."""
    states = job_states(job_id)
    return {task: state for task, state in states.items() if state.split()[0].rstrip("+") not in FINAL_STATES}


def wait_for_array(job_id: str, log=print, poll_seconds: float = 2.0) -> None:
    last = None
    while True:
        active = active_tasks(job_id)
        if not active:
            return
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(Counter(active.values()).items()))
        if summary != last:
            log(f"[slurm] job array {job_id}: {summary}")
            last = summary
        time.sleep(poll_seconds)


def submit_array(suite, pending: list[tuple[object, int, dict]], log=print) -> str:
    """pending: (objective entry, seed, the run's full fit config). Writes each task's config under
    OUT/slurm/task-I/ and the manifest, submits the array and returns its job id."""
    # cpus_per_task unset: the loader workers + 1 of the hungriest task (launch/options.py)
    options, _ = suite.slurm.with_loader_workers(max(loader_workers(c) for _, _, c in pending))
    root = (Path(suite.out) / "slurm").resolve()
    tasks, configs = [], {}
    for i, (entry, seed, fit_config) in enumerate(pending):
        config = root / f"task-{i}" / "config.yaml"
        configs[config] = yaml.safe_dump(fit_config, sort_keys=False)
        tasks.append({"task_id": i, "objective": entry.name, "seed": seed,
                      "run_dir": str(suite.run_dir(entry.name, seed)), "config": str(config)})
    script = render(options, config=root / "task-${SLURM_ARRAY_TASK_ID}" / "config.yaml", workdir=Path.cwd(),
                    log_file=str(root / "logs" / "%x-%A_%a.out"), array=array_spec(len(tasks), suite.max_parallel),
                    environment={"WANDB_RUN_GROUP": f"compare-{suite.name}"})
    job_id = write_and_submit(root, script, configs, options.partition)
    write_manifest(root, {"job_id": job_id, "tasks": tasks})
    log(f"[slurm] submitted {len(tasks)} training(s) as job array {job_id}; logs in {root / 'logs'}")
    return job_id


def earlier_array(suite) -> str | None:
    """The job id of this suite's array from an earlier start, if any of its tasks is still not over."""
    path = manifest_path(suite)
    if not path.is_file():
        return None
    job_id = read_manifest(path)["job_id"]
    return job_id if active_tasks(job_id) else None


def task_log(suite, objective: str, seed: int) -> str:
    """Where the array task that trained this run wrote its log (for error messages)."""
    path = manifest_path(suite)
    if path.is_file():
        manifest = read_manifest(path)
        for task in manifest["tasks"]:
            if task["objective"] == objective and task["seed"] == seed:
                return str(path.parent / "logs" / f"{suite.slurm.job_name}-{manifest['job_id']}_{task['task_id']}.out")
    return str(path.parent / "logs")
