"""Checkpoints that survive crashes: written to a temporary name, flushed and renamed (atomic on POSIX).
The resume lookup (the newest readable checkpoint, falling back past unreadable ones) lives in
`lit_diffusion.runs`, which owns the run folder."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


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
