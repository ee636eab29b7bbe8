"""Writes that lose nothing: what a command writes appears complete or not at all, and a failed write says in
one line which file, why, and what to do.

- ``TempFile``: a file written under a hidden temporary name in its final folder, renamed into place only when
  complete; on any failure it is removed, even when closing it fails too (closing flushes the buffer, which
  fails again on a full disk).
- ``Staging``: a whole dataset written into a hidden folder inside its final folder (the same filesystem, so
  moving it is renames only; a mount point or the working directory works as well), moved into place only
  when complete, with dataset.json last. Until then the old dataset is untouched and readable.
- ``writing(path)``: an OSError while writing ``path`` becomes a :class:`WriteError` of one line.
- ``remove_stale``: the temporaries of a writer that was killed (kill -9, power loss) and cannot clean up.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

from .dataset_json import DATASET_JSON
from .errors import WriteError

log = logging.getLogger("lit_diffusion.data")

STAGING = ".incoming-"  # + pid: a dataset being written (hidden: readers list shards without a leading dot)
_TEMPORARY = re.compile(r"\..+\.tmp(\d+)|" + re.escape(STAGING) + r"(\d+)")

# what to do next, by the cause of a failed write
NEXT_STEP = {
    errno.ENOSPC: "free space or choose another --out",
    errno.EDQUOT: "free space (disk quota) or choose another --out",
    errno.EFBIG: "the file size limit (ulimit -f) is lower than this file: raise it or write smaller files",
    errno.EROFS: "choose a writable --out",
    errno.EACCES: "choose a writable --out or fix its permissions",
    errno.EPERM: "choose a writable --out or fix its permissions",
}


def write_error(error: OSError, path) -> WriteError:
    """'no space left on device writing /x/shard-000003.tar: free space or choose another --out'."""
    cause = error.strerror or str(error) or type(error).__name__
    step = NEXT_STEP.get(error.errno)
    return WriteError(f"{cause[:1].lower()}{cause[1:]} writing {path}" + (f": {step}" if step else ""),
                      path=str(path), errno=error.errno)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as e:  # never hide the error being reported behind one of the clean-up
        log.warning("could not remove %s: %s", path, e)


@contextmanager
def writing(path, discard: bool = False):
    """An OSError inside becomes a one-line WriteError naming `path`; `discard`: remove the torn `path` first."""
    try:
        yield
    except OSError as e:
        if discard:
            _remove(Path(path))
        raise write_error(e, path) from e


class TempFile:
    """A file written as ``.NAME.tmpPID`` beside ``final`` and renamed to it by ``commit``; errors name ``shown``
    (the path the user knows, e.g. the shard's place in the dataset rather than in its staging folder)."""

    def __init__(self, final: Path, shown: Path | None = None):
        self.final, self.shown = Path(final), Path(shown or final)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp{os.getpid()}")
        self.digest, self.size = hashlib.sha256(), 0
        self._file = None
        with self._guard():
            self._file = open(self.tmp, "wb")

    @contextmanager
    def _guard(self):
        try:
            yield
        except BaseException as e:  # a full disk, Ctrl-C, anything: the torn file goes
            self.discard()
            if isinstance(e, OSError):
                raise write_error(e, self.shown) from e
            raise

    def write(self, data: bytes) -> None:
        with self._guard():
            self._file.write(data)
        self.digest.update(data)
        self.size += len(data)

    def commit(self) -> None:
        with self._guard():
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.final)

    def discard(self) -> None:
        """Remove the temporary file; never raises (it runs while another error is on its way to the user)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # closing flushes the buffer, which fails again on a full disk
                pass
        _remove(self.tmp)


def holds_dataset(folder: Path, prefix: str = "shard") -> bool:
    return (folder / DATASET_JSON).exists() or any(folder.glob(f"{prefix}-*.tar"))


class Staging:
    """A dataset written into ``folder/.incoming-PID`` and moved into ``folder`` by ``commit`` when complete."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / f"{STAGING}{os.getpid()}"
        with writing(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            _remove(self.path)
            self.path.mkdir()

    def commit(self, prefix: str) -> None:
        """Replace the dataset in ``folder`` (if any) by the staged one: renames only, dataset.json last; Ctrl-C
        and SIGTERM wait until it is done (half a swap would be neither dataset)."""
        new = sorted(p.name for p in self.path.glob(f"{prefix}-*.tar"))
        with deferred_signals(), writing(self.folder):
            (self.folder / DATASET_JSON).unlink(missing_ok=True)  # first, so no reader pairs it with new shards
            for name in new:
                os.replace(self.path / name, self.folder / name)
            for old in self.folder.glob(f"{prefix}-*.tar"):
                if old.name not in new:
                    old.unlink()
            os.replace(self.path / DATASET_JSON, self.folder / DATASET_JSON)
            self.path.rmdir()

    def discard(self) -> None:
        _remove(self.path)


@contextmanager
def deferred_signals():
    """SIGINT and SIGTERM arrive when the block is done (they are blocked, not lost)."""
    stops = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folder: Path) -> list[Path]:
    """Remove the ``.NAME.tmpPID`` files and ``.incoming-PID`` folders in `folder` whose process no longer runs
    on this machine; returns them."""
    stale = []
    for path in Path(folder).glob(".*"):
        match = _TEMPORARY.fullmatch(path.name)
        if match and not _running(int(match.group(1) or match.group(2))):
            _remove(path)
            stale.append(path)
    if stale:
        log.info("removed %d temporary file(s) left by an earlier run in %s", len(stale), folder)
    return stale
