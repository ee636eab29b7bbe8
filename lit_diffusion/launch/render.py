"""Render the sbatch script from the template in `slurm/job.sbatch` (string.Template: `${name}`; `$$` is a
literal `$`)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from string import Template

from lit_diffusion.launch.options import JobOptions

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "slurm" / "job.sbatch"


def render(options: JobOptions, *, config: Path, log_file: str, workdir: Path, array: str | None = None,
           environment: dict[str, str] | None = None, template: Path | None = None) -> str:
    template = Path(template or DEFAULT_TEMPLATE)
    if not template.is_file():
        raise FileNotFoundError(f"--template: sbatch template {template} does not exist")
    extra = []
    if options.gpus_per_node:
        extra.append(f"#SBATCH --gpus-per-node={options.gpus_per_node}")
    if options.partition:
        extra.append(f"#SBATCH --partition={options.partition}")
    if options.account:
        extra.append(f"#SBATCH --account={options.account}")
    if array:
        extra.append(f"#SBATCH --array={array}")
    env_lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted((environment or {}).items())]
    values = {
        "job_name": options.job_name, "nodes": options.nodes, "tasks_per_node": options.ntasks_per_node,
        "cpus_per_task": options.cpus_per_task, "time": options.time, "signal_seconds": options.signal_seconds,
        "log_file": log_file, "extra_directives": "\n".join(extra), "workdir": shlex.quote(str(workdir)),
        "environment": "\n".join(env_lines), "python": shlex.quote(sys.executable), "config": config,
    }
    try:
        return Template(template.read_text()).substitute(values)
    except (KeyError, ValueError) as error:
        raise ValueError(f"--template: {template} has an unknown or malformed placeholder: {error}") from None
