"""`lit-diffusion slurm submit|sweep|status`: SLURM jobs and job-array sweeps from a training config.

  lit-diffusion slurm submit -c CONFIG [-c ...] [--nodes N --gpus-per-node G --cpus-per-task C --time T
                             --partition P --account A --signal-seconds S --dry-run] [FIT OVERRIDES ...]
  lit-diffusion slurm sweep  -c CONFIG --grid KEY=V1,V2 [--grid ...] [--max-parallel K] [--name NAME]
                             [same job options] [FIT OVERRIDES ...]
  lit-diffusion slurm status SWEEP_DIR [--metric train/loss] [--json]
"""
from __future__ import annotations

import json as json_format
import sys
from pathlib import Path
from typing import Optional

from lit_diffusion.commands.parsing import config_names_a, run
from lit_diffusion.launch.options import JobOptions


def _options(nodes, gpus_per_node, tasks_per_node, cpus_per_task, time, partition, account, signal_seconds,
             job_name) -> JobOptions:
    return JobOptions(nodes=nodes, gpus_per_node=gpus_per_node, tasks_per_node=tasks_per_node,
                      cpus_per_task=cpus_per_task, time=time, partition=partition, account=account,
                      signal_seconds=signal_seconds, job_name=job_name)


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        print(f"lit-diffusion slurm: warning: {line}", file=sys.stderr)


@config_names_a("configs")
def submit(*, configs: list[str], overrides: Optional[list[str]] = None, nodes: int = JobOptions.nodes,
           gpus_per_node: int = JobOptions.gpus_per_node, tasks_per_node: Optional[int] = None,
           cpus_per_task: Optional[int] = None, time: str = JobOptions.time,
           partition: Optional[str] = None, account: Optional[str] = None,
           signal_seconds: int = JobOptions.signal_seconds, job_name: str = JobOptions.job_name,
           template: Optional[Path] = None, dry_run: bool = False) -> int:
    """Submit one training job (lit_diffusion.launch.submit).

    FIT OVERRIDES are any `lit-diffusion fit` options (`--model.max_images 256`, `--wandb_project P`), anywhere
    on the line or after `--`. `-c FILE` names a training YAML (repeatable, in order), as for `fit`; a FILE that
    holds this command's own arguments (what --print_config writes) is read as those instead.

    Args:
        configs: training YAMLs, in order (`-c FILE`, repeatable).
        overrides: `fit` options passed on, e.g. ["--trainer.max_steps", "5"] (or on the command line).
        nodes: nodes of the job.
        gpus_per_node: GPUs per node; one task per GPU (0: CPU tasks).
        tasks_per_node: CPU processes per node (default 1).
        cpus_per_task: CPUs of each task (default: the config's data.num_workers + 1; a warning when fewer).
        time: time limit (MINUTES, H:M:S or D-H:M:S).
        partition: SLURM partition (checked before submitting).
        account: SLURM account.
        signal_seconds: SIGUSR1 this long before the time limit: checkpoint and requeue.
        job_name: SLURM job name.
        template: sbatch template (default slurm/job.sbatch).
        dry_run: print the sbatch script; submit nothing.
    """
    from lit_diffusion.launch.submit import submit_run

    options = _options(nodes, gpus_per_node, tasks_per_node, cpus_per_task, time, partition, account,
                       signal_seconds, job_name)
    job = submit_run(configs, list(overrides or []), options, template=template, dry_run=dry_run)
    _warn(job.warnings)
    if dry_run:
        print(job.script)
        return 0
    print(f"submitted job {job.job_id}: run directory {job.run_dir}, "
          f"log {job.run_dir / 'slurm' / 'logs'}/{options.job_name}-{job.job_id}.out")
    return 0


@config_names_a("configs")
def sweep(*, configs: list[str], grid: list[str], overrides: Optional[list[str]] = None,
          max_parallel: Optional[int] = None, name: Optional[str] = None, sweep_dir: Optional[str] = None,
          nodes: int = JobOptions.nodes, gpus_per_node: int = JobOptions.gpus_per_node,
          tasks_per_node: Optional[int] = None, cpus_per_task: Optional[int] = None,
          time: str = JobOptions.time, partition: Optional[str] = None, account: Optional[str] = None,
          signal_seconds: int = JobOptions.signal_seconds, job_name: str = JobOptions.job_name,
          template: Optional[Path] = None, dry_run: bool = False) -> int:
    """Submit a grid of overrides as a job array, with a manifest (SWEEP_DIR/manifest.json).

    FIT OVERRIDES are any `lit-diffusion fit` options (`--model.max_images 256`, `--wandb_project P`), anywhere
    on the line or after `--`. `-c FILE` names a training YAML (repeatable, in order), as for `fit`; a FILE that
    holds this command's own arguments (what --print_config writes) is read as those instead.

    Args:
        configs: training YAMLs, in order (`-c FILE`, repeatable).
        grid: KEY=V1,V2,... (`--grid` repeatable: the Cartesian product, first slowest).
        overrides: `fit` options common to every task (or on the command line).
        max_parallel: at most K tasks at once.
        name: sweep name (W&B group); default sweep-DATE-TIME.
        sweep_dir: default TRAINER_ROOT/NAME.
        nodes: nodes of each task.
        gpus_per_node: GPUs per node; one task per GPU (0: CPU tasks).
        tasks_per_node: CPU processes per node (default 1).
        cpus_per_task: CPUs of each task (default: the config's data.num_workers + 1; a warning when fewer).
        time: time limit (MINUTES, H:M:S or D-H:M:S).
        partition: SLURM partition (checked before submitting).
        account: SLURM account.
        signal_seconds: SIGUSR1 this long before the time limit: checkpoint and requeue.
        job_name: SLURM job name.
        template: sbatch template (default slurm/job.sbatch).
        dry_run: print the sbatch script (and the tasks on stderr); submit nothing.
    """
    from lit_diffusion.launch.submit import submit_sweep

    options = _options(nodes, gpus_per_node, tasks_per_node, cpus_per_task, time, partition, account,
                       signal_seconds, job_name)
    job = submit_sweep(configs, list(overrides or []), grid, options, name=name, sweep_dir=sweep_dir,
                       max_parallel=max_parallel, template=template, dry_run=dry_run)
    _warn(job.warnings)
    manifest = job.manifest
    if dry_run:
        print(job.script)
        print(json_format.dumps({"sweep": manifest["sweep"], "tasks": manifest["tasks"]}, indent=2), file=sys.stderr)
        return 0
    print(f"submitted sweep {manifest['sweep']} as job array {job.job_id} ({len(manifest['tasks'])} tasks); "
          f"manifest {job.run_dir / 'manifest.json'}")
    return 0


def status(sweep_dir: str, *, metric: str = "train/loss", json: bool = False) -> int:
    """List a sweep's tasks: state, step, final metric, overrides.

    Args:
        sweep_dir: the sweep's folder (holding manifest.json).
        metric: the logged metric to show.
        json: print the rows as JSON.
    """
    from lit_diffusion.launch.submit import sweep_status

    rows = sweep_status(sweep_dir, metric)
    if json:
        print(json_format.dumps(rows, indent=2))
        return 0
    print(f"{'task':>4}  {'job':<14} {'state':<11} {'step':>6}  {metric:>12}  overrides")
    for r in rows:
        value = "-" if r[metric] is None else f"{r[metric]:.5g}"
        step = "-" if r["step"] is None else r["step"]
        overrides = " ".join(f"{k}={v}" for k, v in r["overrides"].items())
        print(f"{r['task_id']:>4}  {r['job']:<14} {r['state']:<11} {step:>6}  {value:>12}  {overrides}")
    return 0


COMMANDS = {"submit": submit, "sweep": sweep, "status": status}


def main(argv: list[str]) -> int:
    from lit_diffusion.launch.configcheck import ConfigError
    from lit_diffusion.launch.sbatch import SlurmError

    return run(COMMANDS, argv, "lit-diffusion slurm", errors=(ConfigError, SlurmError, ValueError, FileNotFoundError),
               error_status=2)
