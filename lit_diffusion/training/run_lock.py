"""One writer per run folder: `fit` holds an exclusive lock on RUN/.lock for as long as it runs.

Two fits into one folder at once mix their checkpoints and crash on each other's renames (issue 16, fault 7).
The lock is an flock(2) on the file, so the kernel drops it when its process dies however it dies (kill -9
included): a lock file left by a dead process is taken over, never a reason to refuse. The file holds the
holder's PID so that the refusal can name it."""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from lit_diffusion.distributed import process

log = logging.getLogger("lit_diffusion.training")

LOCK_NAME = ".lock"


class RunFolderLocked(RuntimeError):
    """Another live process is training into this run folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class RunLock:
    def __init__(self, root: str | Path):
        self.path = Path(root) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderLocked(f"run folder {self.path.parent} is in use by process {holder} (lock {self.path}); "
                                  "two trainings in one folder would mix their checkpoints. Wait for it, stop it, "
                                  "or use another --trainer.default_root_dir") from None
        previous = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid() and not _pid_alive(int(previous)):
            log.warning("run folder %s: taking over the lock of process %s, which is no longer running",
                        self.path.parent, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock; the file stays (its PID is stale then)
            self._fd = None


def is_global_rank_zero_process() -> bool:
    """Before the Trainer exists: whether this process is rank 0 (other ranks share the folder by design)."""
    return process.launched().is_global_zero
