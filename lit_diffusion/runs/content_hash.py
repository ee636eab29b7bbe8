"""The content hash that says a checkpoint is what it was when written.

Why: a zip whose directory is intact can still hold garbage in a tensor record, which torch loads silently (a
weight of 3.4e38 surfaces later as a NaN loss)."""
from __future__ import annotations

import hashlib

import torch

from lit_diffusion.runs.record import HASH_FIELD, RUN_FIELDS


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, or its content does not match its hash."""


def _feed(h, value, key: str) -> None:
    """Every tensor (its key path, dtype, shape and bytes) in a fixed order. Only tensors: they are stored as
    raw records that torch reads back without any check, while damage to the pickled rest fails to unpickle;
    scalar fields stay editable by hand (e.g. a corrected train_seconds)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            if not (key == "" and k == RUN_FIELDS):
                _feed(h, value[k], f"{key}/{k!r}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _feed(h, v, f"{key}[{i}]")


def content_hash(checkpoint: dict) -> str:
    """sha256 over the checkpoint's tensors (not over its own run record)."""
    h = hashlib.sha256()
    _feed(h, checkpoint, "")
    return h.hexdigest()


def check_content(checkpoint: dict, path) -> None:
    """Raise CheckpointError if the stored hash does not match the content (checkpoints written before the hash
    existed have none and pass)."""
    expected = (checkpoint.get(RUN_FIELDS) or {}).get(HASH_FIELD)
    if expected is not None and content_hash(checkpoint) != expected:
        raise CheckpointError(f"checkpoint {path} is corrupt: its content does not match the sha256 recorded "
                              "when it was written")
