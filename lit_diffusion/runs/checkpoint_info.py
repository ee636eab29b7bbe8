"""The one reader of a checkpoint's bookkeeping fields (memory-mapped: the weights are not read), the content
hash that says a checkpoint is what it was when written, and the resume lookup: the readable checkpoint of a
folder with the highest step.

Why by step and not by modification time: copying a run folder (`cp -r`) or moving it rewrites the times, and
the newest file is then not the furthest state. Why a content hash: a zip whose directory is intact can still
hold garbage in a tensor record, which torch loads silently (a weight of 3.4e38 surfaces later as a NaN loss)."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("lit_diffusion.training")  # the resume warnings belong to training's log

RUN_FIELDS = "lit_diffusion_run"  # the checkpoint's own record: step, images seen, fit finished, content hash
HASH_FIELD = "content_sha256"


class CheckpointError(RuntimeError):
    """No checkpoint can be resumed from: every candidate is unreadable or fails its content hash."""


def read_checkpoint(path: str | Path, mmap: bool = True, map_location="cpu") -> dict:
    """The whole checkpoint dict; with mmap, tensors are read only when touched."""
    return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)


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


_verified: set[tuple] = set()  # files whose content matched their hash in this process (unchanged since)


def _file_stamp(path: str | Path) -> tuple:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def verify_content(checkpoint: dict, path: str | Path) -> None:
    """Raise CheckpointError if the stored hash does not match the content (checkpoints written before the hash
    existed have none and pass). A file verified once (the resume lookup) is not hashed again when loaded."""
    expected = (checkpoint.get(RUN_FIELDS) or {}).get(HASH_FIELD)
    stamp = _file_stamp(path)
    if expected is None or stamp in _verified:
        return
    if content_hash(checkpoint) != expected:
        raise CheckpointError(f"checkpoint {path} is corrupt: its content does not match the sha256 recorded "
                              "when it was written")
    _verified.add(stamp)


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
    fit_finished: bool = False  # written when fit reached its budget (steps, images or time), not on a signal
    content_sha256: str | None = None  # None for checkpoints written before the hash existed

    @property
    def identity(self) -> str:
        """What distinguishes this checkpoint's content from any other state of the run (results computed from
        it, such as a comparison's scores, are keyed by it)."""
        return self.content_sha256 or f"step{self.global_step}-images{self.images_seen}"

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
    fields = ckpt.get(RUN_FIELDS) or {}
    return CheckpointInfo(path=Path(path), global_step=int(ckpt.get("global_step", 0)),
                          images_seen=int(ckpt.get("images_seen", 0)),
                          train_seconds=float(ckpt.get("train_seconds", 0.0)), model_spec=ckpt.get("model_spec"),
                          wandb_run_id=ckpt.get("wandb_run_id"),
                          sample_shape=None if shape is None else tuple(int(d) for d in shape),
                          backbone_parameters=params, fit_finished=bool(fields.get("fit_finished", False)),
                          content_sha256=fields.get(HASH_FIELD))


def _warn_unreadable(path: Path, error: Exception) -> None:
    log.warning("checkpoint %s is unreadable (%s: %s); falling back to an older one", path,
                type(error).__name__, error)


def readable(path: Path) -> bool:
    """Whether the whole checkpoint loads (every tensor record read) and matches its content hash."""
    try:
        verify_content(read_checkpoint(path, mmap=False), path)
        return True
    except Exception as error:  # any failure to read means: do not resume from it
        _warn_unreadable(path, error)
        return False


def _ranked(candidates: list[Path]) -> list[Path]:
    """The checkpoints whose fields can be read, highest step first (then images seen, then a finished fit,
    then modification time); the others (torn, or not a checkpoint) are reported and dropped."""
    keyed = []
    for path in candidates:
        try:
            info = read_checkpoint_info(path)
        except Exception as error:
            _warn_unreadable(path, error)
            continue
        keyed.append(((info.global_step, info.images_seen, info.fit_finished, path.stat().st_mtime_ns), path))
    return [path for _, path in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """The readable `*.ckpt` under `directory` with the highest step, or None if there is no checkpoint at all.
    Raises CheckpointError when there are checkpoints but none is readable: restarting from step 0 would
    silently throw the run away."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = [p for p in directory.rglob("*.ckpt") if p.is_file()]
    for path in _ranked(candidates):
        if readable(path):
            return path
    if candidates:
        raise CheckpointError(f"none of the {len(candidates)} checkpoint(s) in {directory} is readable (see the "
                              "warnings above); not starting from scratch over them. Move the folder away to "
                              "start anew, or pass --ckpt_path FILE")
    return None
