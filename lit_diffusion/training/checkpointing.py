"""Checkpoints that survive crashes: written to a temporary name, flushed and renamed (atomic on POSIX),
and a resume that takes the newest readable checkpoint, falling back past unreadable ones with a warning."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

log = logging.getLogger("lit_diffusion.training")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to `NAME.tmp`, fsync, then os.replace onto NAME: a crash never leaves a half-written
    checkpoint under a final name, so the last good one survives."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO does not take storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def readable(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=False, mmap=True)
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
