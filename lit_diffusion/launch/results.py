"""The final value of a metric of one run directory: from its W&B offline run if there is one, else from its
CSV logs; and the step it reached, from its newest checkpoint."""
from __future__ import annotations

from pathlib import Path

from lit_diffusion.runs import MetricsLog, RunDirectory, find_resume_checkpoint, read_record


def final_metric(run_dir: Path, key: str) -> float | None:
    run = RunDirectory(run_dir)
    if run.wandb.is_dir():
        from lit_diffusion.runs.wandb_offline import load_offline_runs  # wandb is imported only when needed

        for offline in load_offline_runs(run.root).values():
            values = offline.metric(key)
            if values:
                return float(values[-1])
    return MetricsLog(run).last(key)


def final_step(run_dir: Path) -> int | None:
    found = find_resume_checkpoint(RunDirectory(run_dir).checkpoints)
    return None if found is None else read_record(found).global_step
