"""`lit-diffusion slurm submit|sweep|status`: SLURM jobs and job-array sweeps from a training config.

  lit-diffusion slurm submit -c CONFIG [-c ...] [--nodes N --gpus-per-node G --cpus-per-task C --time T
                             --partition P --account A --signal-seconds S --dry-run] [FIT OVERRIDES ...]
  lit-diffusion slurm sweep  -c CONFIG --grid KEY=V1,V2 [--grid ...] [--max-parallel K] [--name NAME]
                             [same job options] [FIT OVERRIDES ...]
  lit-diffusion slurm status SWEEP_DIR [--metric train/loss] [--json]

FIT OVERRIDES are any `lit-diffusion fit` options (`--model.max_images 256`, `--wandb_project P`). The config
is parsed here first (a config that does not parse never reaches SLURM), resolved into one YAML file beside the
job's logs (RUN_DIR/slurm/config.yaml, or SWEEP_DIR/task-I/config.yaml), and the job runs
`lit-diffusion fit -c THAT --ckpt_path last`, so a requeued job resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lit_diffusion.launch.configcheck import ConfigError, resolve_config
from lit_diffusion.launch.options import JobOptions
from lit_diffusion.launch.render import render
from lit_diffusion.launch.sbatch import SlurmError, check_partition, job_states, submit
from lit_diffusion.launch.sweep import (array_spec, grid_points, overrides_args, parse_grid, read_manifest,
                                        write_manifest)


def _job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", action="append", required=True, help="training YAML (repeatable, in order)")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=0, help="one task per GPU (0: CPU tasks)")
    parser.add_argument("--tasks-per-node", type=int, default=None, help="CPU processes per node (default 1)")
    parser.add_argument("--cpus-per-task", type=int, default=1)
    parser.add_argument("--time", default="01:00:00", help="time limit (MINUTES, H:M:S or D-H:M:S)")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--account", default=None)
    parser.add_argument("--signal-seconds", type=int, default=120,
                        help="SIGUSR1 this long before the time limit: checkpoint and requeue")
    parser.add_argument("--job-name", default="lit-diffusion")
    parser.add_argument("--template", type=Path, default=None, help="sbatch template (default slurm/job.sbatch)")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script; submit nothing")


def _options(args) -> JobOptions:
    return JobOptions(nodes=args.nodes, gpus_per_node=args.gpus_per_node, tasks_per_node=args.tasks_per_node,
                      cpus_per_task=args.cpus_per_task, time=args.time, partition=args.partition,
                      account=args.account, signal_seconds=args.signal_seconds, job_name=args.job_name)


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


def cmd_submit(args, overrides: list[str]) -> int:
    options = _options(args)
    text, config = resolve_config(args.config, overrides + options.trainer_overrides())
    run_dir = Path((config.get("trainer") or {}).get("default_root_dir") or ".")
    job_dir = run_dir / "slurm"
    script = render(options, config=job_dir.resolve() / "config.yaml", workdir=Path.cwd(),
                    log_file=str((job_dir / "logs").resolve() / "%x-%j.out"), template=args.template)
    if args.dry_run:
        print(script)
        return 0
    job_id = write_and_submit(job_dir, script, {job_dir / "config.yaml": text}, options.partition)
    _write(job_dir / "job_id", job_id + "\n")
    print(f"submitted job {job_id}: run directory {run_dir}, log {job_dir / 'logs'}/{options.job_name}-{job_id}.out")
    return 0


def cmd_sweep(args, overrides: list[str]) -> int:
    options = _options(args)
    grid = parse_grid(args.grid)
    points = grid_points(grid)
    name = args.name or time.strftime("sweep-%Y%m%d-%H%M%S", time.gmtime())
    _, base = resolve_config(args.config, overrides + options.trainer_overrides())
    sweep_dir = Path(args.sweep_dir or Path((base.get("trainer") or {}).get("default_root_dir") or "runs") / name)
    tasks, texts = [], []
    for i, point in enumerate(points):
        run_dir = sweep_dir / f"task-{i}"
        extra = overrides_args(point) + ["--trainer.default_root_dir", str(run_dir)]
        text, _ = resolve_config(args.config, overrides + options.trainer_overrides() + extra)
        texts.append(text)
        tasks.append({"task_id": i, "overrides": point, "run_dir": str(run_dir), "config": str(run_dir / "config.yaml")})
    config = (sweep_dir.resolve() / "task-${SLURM_ARRAY_TASK_ID}" / "config.yaml")
    script = render(options, config=config, workdir=Path.cwd(), array=array_spec(len(points), args.max_parallel),
                    log_file=str((sweep_dir / "logs").resolve() / "%x-%A_%a.out"),
                    environment={"WANDB_RUN_GROUP": name}, template=args.template)
    if args.dry_run:
        print(script)
        print(json.dumps({"sweep": name, "tasks": tasks}, indent=2), file=sys.stderr)
        return 0
    job_id = write_and_submit(sweep_dir, script, {Path(t["config"]): text for t, text in zip(tasks, texts)},
                              options.partition)
    manifest = {"sweep": name, "config": args.config, "common_overrides": overrides, "grid": grid,
                "job_id": job_id, "tasks": tasks}
    path = write_manifest(sweep_dir, manifest)
    print(f"submitted sweep {name} as job array {manifest['job_id']} ({len(tasks)} tasks); manifest {path}")
    return 0


def sweep_status(sweep_dir: str | Path, metric: str) -> list[dict]:
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


def cmd_status(args) -> int:
    rows = sweep_status(args.sweep_dir, args.metric)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'task':>4}  {'job':<14} {'state':<11} {'step':>6}  {args.metric:>12}  overrides")
    for r in rows:
        value = "-" if r[args.metric] is None else f"{r[args.metric]:.5g}"
        step = "-" if r["step"] is None else r["step"]
        overrides = " ".join(f"{k}={v}" for k, v in r["overrides"].items())
        print(f"{r['task_id']:>4}  {r['job']:<14} {r['state']:<11} {step:>6}  {value:>12}  {overrides}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit-diffusion slurm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    submit_p = sub.add_parser("submit", help="submit one training job", allow_abbrev=False)
    _job_arguments(submit_p)
    sweep_p = sub.add_parser("sweep", help="submit a grid of overrides as a job array", allow_abbrev=False)
    _job_arguments(sweep_p)
    sweep_p.add_argument("--grid", action="append", required=True, help="KEY=V1,V2,... (repeatable: product)")
    sweep_p.add_argument("--max-parallel", type=int, default=None, help="at most K tasks at once")
    sweep_p.add_argument("--name", default=None, help="sweep name (W&B group); default sweep-DATE-TIME")
    sweep_p.add_argument("--sweep-dir", default=None, help="default: TRAINER_ROOT/NAME")
    status_p = sub.add_parser("status", help="list a sweep's tasks: state, step, final metric", allow_abbrev=False)
    status_p.add_argument("sweep_dir")
    status_p.add_argument("--metric", default="train/loss")
    status_p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "status" and rest:
        parser.error(f"status: unrecognised arguments {' '.join(rest)}")
    try:
        if args.command == "status":
            return cmd_status(args)
        return (cmd_submit if args.command == "submit" else cmd_sweep)(args, rest)
    except (ConfigError, SlurmError, ValueError, FileNotFoundError) as error:
        print(f"lit-diffusion slurm {args.command}: {error}", file=sys.stderr)
        return 2
