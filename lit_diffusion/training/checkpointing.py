"""Checkpoints that survive crashes and say what they are: each is stamped with a content hash, written to a
temporary name, flushed and renamed (atomic on POSIX), and verified against its hash when loaded. A failed
write (disk full) removes its temporary file and names the path. The resume lookup (the readable checkpoint
with the highest step) lives in `lit_diffusion.runs`, which owns the run folder."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lit_diffusion.runs import content_hash, open_checkpoint
from lit_diffusion.runs.record import HASH_FIELD, RUN_FIELDS


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to `NAME.tmp`, fsync, then os.replace onto NAME: a crash never leaves a half-written
    checkpoint under a final name, so the last good one survives."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO does not take storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint[RUN_FIELDS] = dict(checkpoint.get(RUN_FIELDS) or {})
        checkpoint[RUN_FIELDS][HASH_FIELD] = content_hash(checkpoint)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as error:
            tmp.unlink(missing_ok=True)  # a partial file would fill the disk further and look like a checkpoint
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt and the like: only the clean-up is ours
            message = (f"writing checkpoint {path} failed ({type(error).__name__}: {error}); no partial file was "
                       "left behind, the previous checkpoints are intact")
            if isinstance(error, OSError):  # disk full (ENOSPC), quota, file size limit (EFBIG)
                raise OSError(error.errno, message) from error
            raise RuntimeError(message) from error  # torch reports a failed write as an enforce failure

    def load_checkpoint(self, path, *args, **kwargs):
        # through the one door: corrupt tensor data loads without error, so the hash is checked before training on
        # it; a resume lookup has loaded (and checked) this very file already, and that load is reused
        return open_checkpoint(path).full()
