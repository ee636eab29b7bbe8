"""The one reader of a checkpoint's bookkeeping fields (memory-mapped: the weights are not read), and the
resume lookup: the newest readable checkpoint of a folder."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("lit_diffusion.training")  # the resume warnings belong to training's log


def read_checkpoint(path: str | Path, mmap: bool = True, map_location="cpu") -> dict:
    """The whole checkpoint dict; with mmap, tensors are read only when touched."""
    return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    global_step: int
    images_seen: int
    train_seconds: float  # time in fit, summed over resumes
    model_spec: dict | None  # the model section of the fit config (`load_module` rebuilds from it)
    wandb_run_id: str | None
    sample_shape: tuple[int, ...] | None
    backbone_parameters: int

    def finished(self, max_images: int, max_time_seconds: float = 0.0) -> bool:
        """Whether the run has seen the image budget or, under a wall-clock budget, trained that long
        (Lightning's timer stops at the first step past it; 2% slack for its own start-up)."""
        if max_time_seconds and self.train_seconds >= 0.98 * max_time_seconds:
            return True
        return self.images_seen >= max_images


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    ckpt = read_checkpoint(path)
    shape = ckpt.get("sample_shape")
    params = sum(v.numel() for k, v in ckpt.get("state_dict", {}).items() if k.startswith("backbone."))
    return CheckpointInfo(path=Path(path), global_step=int(ckpt.get("global_step", 0)),
                          images_seen=int(ckpt.get("images_seen", 0)),
                          train_seconds=float(ckpt.get("train_seconds", 0.0)), model_spec=ckpt.get("model_spec"),
                          wandb_run_id=ckpt.get("wandb_run_id"),
                          sample_shape=None if shape is None else tuple(int(d) for d in shape),
                          backbone_parameters=params)


def readable(path: Path) -> bool:
    try:
        read_checkpoint(path)
        return True
    except Exception as error:  # any failure to read means: do not resume from it
        log.warning("checkpoint %s is unreadable (%s: %s); falling back to an older one", path,
                    type(error).__name__, error)
        return False


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """The newest readable `*.ckpt` under `directory` (by modification time), or None if there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = sorted(directory.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in candidates:
        if readable(path):
            return path
    if candidates:
        log.warning("no readable checkpoint among %d in %s; starting from scratch", len(candidates), directory)
    return None
