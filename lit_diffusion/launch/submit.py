"""Submitting training runs to SLURM: one job, or a grid of overrides as one job array with a manifest, and the
state of a sweep's tasks. The config is parsed first, exactly as `fit` parses it (a config that does not parse
never reaches SLURM), resolved into one YAML beside the job's logs (RUN_DIR/slurm/config.yaml, or
SWEEP_DIR/task-I/config.yaml), and the job runs `lit-diffusion fit -c THAT --ckpt_path last`, so a requeued job
resumes. `lit-diffusion slurm submit|sweep|status` (lit_diffusion.commands.slurm) is the command line."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lit_diffusion.launch.configcheck import loader_workers, resolve_config
from lit_diffusion.launch.options import JobOptions
from lit_diffusion.launch.render import render
from lit_diffusion.launch.sbatch import check_partition, job_states, submit
from lit_diffusion.launch.sweep import (array_spec, grid_points, overrides_args, parse_grid, read_manifest,
                                        write_manifest)


@dataclass
class Submitted:
    script: str  # the rendered sbatch script
    job_id: str | None  # None for a dry run
    run_dir: Path  # the run's directory, or the sweep's
    manifest: dict | None = None  # sweeps only: name, tasks (with their overrides and run directories), job id
    warnings: list[str] = field(default_factory=list)  # e.g. fewer CPUs than the config's loader needs


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_and_submit(job_dir: Path, script: str, configs: dict[Path, str], partition: str | None) -> str:
    """Check the partition, then write the configs, JOB_DIR/logs/ and JOB_DIR/job.sbatch, and sbatch the script
    from the current directory (nothing is written for a partition that does not exist); returns the job id."""
    if partition:
        check_partition(partition)
    for path, text in configs.items():
        _write(path, text)
    (job_dir / "logs").mkdir(parents=True, exist_ok=True)
    _write(job_dir / "job.sbatch", script)
    return submit(script, workdir=str(Path.cwd()))


def submit_run(configs: list[str], overrides: list[str], options: JobOptions, template: Path | None = None,
               dry_run: bool = False) -> Submitted:
    """One training job from these config files and `fit` overrides; a dry run only renders the script."""
    text, config = resolve_config(configs, overrides + options.trainer_overrides())
    options, warning = options.with_loader_workers(loader_workers(config))
    warnings = [warning] if warning else []
    run_dir = Path((config.get("trainer") or {}).get("default_root_dir") or ".")
    job_dir = run_dir / "slurm"
    script = render(options, config=job_dir.resolve() / "config.yaml", workdir=Path.cwd(),
                    log_file=str((job_dir / "logs").resolve() / "%x-%j.out"), template=template)
    if dry_run:
        return Submitted(script, None, run_dir, warnings=warnings)
    job_id = write_and_submit(job_dir, script, {job_dir / "config.yaml": text}, options.partition)
    _write(job_dir / "job_id", job_id + "\n")
    return Submitted(script, job_id, run_dir, warnings=warnings)


def submit_sweep(configs: list[str], overrides: list[str], grid: list[str], options: JobOptions,
                 name: str | None = None, sweep_dir: str | Path | None = None, max_parallel: int | None = None,
                 template: Path | None = None, dry_run: bool = False) -> Submitted:
    """A job array: one task per point of the grid (["model.lr=1e-3,1e-4", ...]), grouped in W&B by name."""
    parsed = parse_grid(grid)
    points = grid_points(parsed)
    name = name or time.strftime("sweep-%Y%m%d-%H%M%S", time.gmtime())
    _, base = resolve_config(configs, overrides + options.trainer_overrides())
    folder = Path(sweep_dir or Path((base.get("trainer") or {}).get("default_root_dir") or "runs") / name)
    tasks, texts, workers = [], [], 0
    for i, point in enumerate(points):
        run_dir = folder / f"task-{i}"
        extra = overrides_args(point) + ["--trainer.default_root_dir", str(run_dir)]
        text, config = resolve_config(configs, overrides + options.trainer_overrides() + extra)
        workers = max(workers, loader_workers(config))  # one allocation shape for every task of the array
        texts.append(text)
        tasks.append({"task_id": i, "overrides": point, "run_dir": str(run_dir), "config": str(run_dir / "config.yaml")})
    options, warning = options.with_loader_workers(workers)
    warnings = [warning] if warning else []
    script = render(options, config=folder.resolve() / "task-${SLURM_ARRAY_TASK_ID}" / "config.yaml",
                    workdir=Path.cwd(), array=array_spec(len(points), max_parallel),
                    log_file=str((folder / "logs").resolve() / "%x-%A_%a.out"),
                    environment={"WANDB_RUN_GROUP": name}, template=template)
    manifest = {"sweep": name, "config": list(configs), "common_overrides": overrides, "grid": parsed,
                "job_id": None, "tasks": tasks}
    if dry_run:
        return Submitted(script, None, folder, manifest, warnings)
    manifest["job_id"] = write_and_submit(folder, script, {Path(t["config"]): text for t, text in zip(tasks, texts)},
                                          options.partition)
    write_manifest(folder, manifest)
    return Submitted(script, manifest["job_id"], folder, manifest, warnings)


def sweep_status(sweep_dir: str | Path, metric: str) -> list[dict]:
    """One row per task of a sweep: task id, job, SLURM state, last step, final `metric`, overrides, run dir."""
    from lit_diffusion.launch.results import final_metric, final_step

    manifest = read_manifest(sweep_dir)
    states = job_states(manifest["job_id"]) if manifest.get("job_id") else {}
    rows = []
    for task in manifest["tasks"]:
        run_dir = Path(task["run_dir"])
        key = f"{manifest['job_id']}_{task['task_id']}"
        state = states.get(key) or _pending_state(states, manifest["job_id"], task["task_id"]) or "UNKNOWN"
        rows.append({"task_id": task["task_id"], "job": key, "state": state, "step": final_step(run_dir),
                     metric: final_metric(run_dir, metric), "overrides": task["overrides"],
                     "run_dir": str(run_dir)})
    return rows


def _pending_state(states: dict[str, str], job_id: str, task_id: int) -> str | None:
    """squeue/scontrol show not-yet-started tasks as one entry `JOB_[3-5%2]`."""
    for key, state in states.items():
        spec = key.split("_", 1)[-1].strip("[]").split("%")[0]
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            if lo.isdigit() and int(lo) <= task_id <= int(hi or lo):
                return state
    return None
