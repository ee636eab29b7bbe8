"""Where a run keeps its files. The one place that spells the layout:

    RUN/checkpoints/last.ckpt (and numbered, best-k and preempted checkpoints beside it)
    RUN/csv/version_N/metrics.csv      the CSV logger, one version per start
    RUN/wandb/                         W&B run files (online or offline)
    RUN/previews/step_NNNNNNN.png      training previews
    RUN/ema_snapshots/step_NNNNNNN-sigma_rel_S.safetensors  post-hoc EMA snapshots (EDM2 sec. 3)
    RUN/fit.yaml                       the composed fit config a comparison trains from
    RUN/train.log, RUN/train.json      a comparison's training output and record
    RUN/eval.json, RUN/samples/KEY.pt  a comparison's score cache and the first samples of each setting
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CSV_LOGGER_NAME = "csv"  # CSVLogger(root, name=...) writes RUN/csv/version_N/metrics.csv
LAST_CHECKPOINT = "last.ckpt"
STOP_CHECKPOINT = "preempted.ckpt"  # distributed.preemption writes it on a stop signal, wherever the step fell


@dataclass(frozen=True)
class RunDirectory:
    """The files of one training run under `root` (Lightning's `trainer.default_root_dir`)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    def kept_checkpoints(self) -> list[Path]:
        """The checkpoints the run keeps by its own schedule (see `kept_checkpoints`)."""
        return kept_checkpoints(self.checkpoints)

    @property
    def csv_logs(self) -> Path:
        return self.root / CSV_LOGGER_NAME

    @property
    def wandb(self) -> Path:
        return self.root / "wandb"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    def preview(self, step: int) -> Path:
        return self.previews / f"step_{step:07d}.png"

    @property
    def ema_snapshots(self) -> Path:
        return self.root / "ema_snapshots"

    def ema_snapshot(self, step: int, sigma_rel: float) -> Path:
        return self.ema_snapshots / f"step_{step:07d}-sigma_rel_{sigma_rel:.4f}.safetensors"

    @property
    def fit_config(self) -> Path:
        return self.root / "fit.yaml"

    @property
    def train_log(self) -> Path:
        return self.root / "train.log"

    @property
    def train_record(self) -> Path:
        return self.root / "train.json"

    @property
    def eval_cache(self) -> Path:
        return self.root / "eval.json"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def sample_file(self, name: str) -> Path:
        return self.samples / f"{name}.pt"

    def metrics_files(self) -> list[Path]:
        """Every CSV log of the run, oldest start first (by version number, so version_10 follows version_9)."""
        def version(path: Path) -> int:
            match = re.fullmatch(r"version_(\d+)", path.parent.name)
            return int(match.group(1)) if match else -1

        return sorted(self.csv_logs.glob("version_*/metrics.csv"), key=lambda p: (version(p), p.parent.name))


def kept_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints of `folder` that a run keeps by its own schedule (numbered ones and last.ckpt), by name: not
    the one a stop signal wrote at whatever step it came (last.ckpt is written at that step too, so the furthest
    state is still listed). An interrupted and resumed run then lists what an uninterrupted one lists; the stop
    checkpoint itself stays on disk for `--ckpt_path last` (runs/resume.py)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.ckpt") if p.name != STOP_CHECKPOINT)
