"""The resume lookup: the readable checkpoint of a folder with the highest step.

Why by step and not by modification time: copying a run folder (`cp -r`) or moving it rewrites the times, and
the newest file is then not the furthest state. Every candidate is opened through the one door
(`open_checkpoint`), so the chosen file is loaded and hash-checked once, and the fit that resumes from it gets
that same load."""
from __future__ import annotations

import logging
from pathlib import Path

from lit_diffusion.runs.checkpoint_file import drop_loaded, is_sharded, open_checkpoint
from lit_diffusion.runs.content_hash import CheckpointError

log = logging.getLogger("lit_diffusion.training")  # the resume warnings belong to training's log


def _warn_unreadable(path: Path, error: Exception) -> None:
    log.warning("checkpoint %s is unreadable (%s: %s); falling back to an older one", path,
                type(error).__name__, error)


def readable(path: Path) -> bool:
    """Whether the checkpoint loads and its tensors (each read in full to hash them) match its content hash."""
    try:
        open_checkpoint(path).verify()
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
            record = open_checkpoint(path).record
        except Exception as error:
            _warn_unreadable(path, error)
            continue
        keyed.append(((record.global_step, record.images_seen, record.fit_finished, path.stat().st_mtime_ns), path))
    return [path for _, path in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


def checkpoints_in(directory: str | Path) -> list[Path]:
    """Every `*.ckpt` under `directory`: files and sharded folders."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*.ckpt") if p.is_file() or is_sharded(p))


def check_fresh_start(run) -> None:
    """A run that starts from step 0 (no --ckpt_path) in a folder holding checkpoints would replace its last.ckpt
    and same-named numbered checkpoints, and a later `--ckpt_path last` would resume the old weights with the new
    config: refused (CheckpointError), nothing is touched. `run` is a RunDirectory."""
    found = checkpoints_in(run.checkpoints)
    if found:
        names = ", ".join(p.name for p in found[:3]) + (" ..." if len(found) > 3 else "")
        raise CheckpointError(f"run folder {run.root} already holds {len(found)} checkpoint(s) of an earlier run "
                              f"({names} in {run.checkpoints}); a new run would write over them: resume it with "
                              "--ckpt_path last, or choose another --trainer.default_root_dir (or move the folder "
                              "away)")


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """The readable `*.ckpt` under `directory` (a file, or a sharded folder) with the highest step, or None if
    there is no checkpoint at all. Raises CheckpointError when there are checkpoints but none is readable:
    restarting from step 0 would silently throw the run away."""
    directory = Path(directory)
    candidates = checkpoints_in(directory)
    for path in _ranked(candidates):
        if readable(path):
            drop_loaded(keep=path)  # the others' files may be rotated away during the fit: do not hold them
            return path
    drop_loaded()
    if candidates:
        raise CheckpointError(f"none of the {len(candidates)} checkpoint(s) in {directory} is readable (see the "
                              "warnings above); not starting from scratch over them. Move the folder away to "
                              "start anew, or pass --ckpt_path FILE")
    return None
