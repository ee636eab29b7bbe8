"""The final value of a metric of one run directory: from its W&B offline run if there is one, else from its
CSV logs; and the step it reached, from its newest checkpoint."""
from __future__ import annotations

import csv
from pathlib import Path


def final_metric(run_dir: Path, key: str) -> float | None:
    run_dir = Path(run_dir)
    if (run_dir / "wandb").is_dir():
        from lit_diffusion.training.wandb_offline import load_offline_runs

        for run in load_offline_runs(run_dir).values():
            values = run.metric(key)
            if values:
                return float(values[-1])
    value = None
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get(key):
                    value = float(row[key])
    return value


def final_step(run_dir: Path) -> int | None:
    from lit_diffusion.training.checkpointing import find_resume_checkpoint

    import torch

    found = find_resume_checkpoint(Path(run_dir) / "checkpoints")
    if found is None:
        return None
    return int(torch.load(found, map_location="cpu", weights_only=False, mmap=True)["global_step"])
