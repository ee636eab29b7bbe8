"""The trainings of a comparison as one SLURM job array (suite `launcher: slurm`): one array task per
(objective, seed) that has not finished, each running `lit-diffusion fit -c TASK/config.yaml --ckpt_path last`
from the sbatch template, so a preempted task requeues and resumes. This process waits for the array and
then evaluates locally; started again while the array still runs, it waits for that array instead of
submitting a second one."""
from __future__ import annotations

import json
import time
from pathlib import Path

from lit_diffusion.launch.configcheck import resolve_config
from lit_diffusion.launch.render import render
from lit_diffusion.launch.sbatch import check_partition, job_states, submit
from lit_diffusion.launch.sweep import array_spec

# SLURM job states that are over (a task in any other state is pending, running or being requeued)
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}


def manifest_path(suite) -> Path:
    return Path(suite.out) / "slurm" / "manifest.json"


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
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(_count(active.values()).items()))
        if summary != last:
            log(f"[slurm] job array {job_id}: {summary}")
            last = summary
        time.sleep(poll_seconds)


def _count(states) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def submit_array(suite, pending: list[tuple[object, int, list[str]]], log=print) -> str:
    """pending: (objective entry, seed, fit arguments without the subcommand). Writes one resolved config per
    task under OUT/slurm/task-I/ and the manifest, submits the array and returns its job id."""
    options = suite.slurm
    root = (Path(suite.out) / "slurm").resolve()
    if options.partition:
        check_partition(options.partition)
    tasks = []
    for i, (entry, seed, fit_args) in enumerate(pending):
        text, _ = resolve_config([], fit_args + options.trainer_overrides())
        config = root / f"task-{i}" / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text)
        tasks.append({"task_id": i, "objective": entry.name, "seed": seed,
                      "run_dir": str(suite.run_dir(entry.name, seed)), "config": str(config)})
    (root / "logs").mkdir(parents=True, exist_ok=True)
    script = render(options, config=root / "task-${SLURM_ARRAY_TASK_ID}" / "config.yaml", workdir=Path.cwd(),
                    log_file=str(root / "logs" / "%x-%A_%a.out"), array=array_spec(len(tasks), suite.max_parallel),
                    environment={"WANDB_RUN_GROUP": f"compare-{suite.name}"})
    (root / "job.sbatch").write_text(script)
    job_id = submit(script, workdir=str(Path.cwd()))
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps({"job_id": job_id, "tasks": tasks}, indent=1))
    tmp.replace(root / "manifest.json")
    log(f"[slurm] submitted {len(tasks)} training(s) as job array {job_id}; logs in {root / 'logs'}")
    return job_id


def earlier_array(suite) -> str | None:
    """The job id of this suite's array from an earlier start, if any of its tasks is still not over."""
    path = manifest_path(suite)
    if not path.is_file():
        return None
    job_id = json.loads(path.read_text())["job_id"]
    return job_id if active_tasks(job_id) else None


def task_log(suite, objective: str, seed: int) -> str:
    """Where the array task that trained this run wrote its log (for error messages)."""
    path = manifest_path(suite)
    if path.is_file():
        manifest = json.loads(path.read_text())
        for task in manifest["tasks"]:
            if task["objective"] == objective and task["seed"] == seed:
                return str(path.parent / "logs" / f"{suite.slurm.job_name}-{manifest['job_id']}_{task['task_id']}.out")
    return str(path.parent / "logs")
