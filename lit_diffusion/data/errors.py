"""Errors for bad input, and the policy that either raises them or skips and counts.

Every error names where the problem is (the shard URL or source file, the sample key) and what
it is. With ``on_error="skip"`` a bad sample is dropped, counted and logged as a warning; there
is no silent path.
"""
from __future__ import annotations

import logging
from typing import Literal

log = logging.getLogger("lit_diffusion.data")

OnError = Literal["raise", "skip"]


class DataError(RuntimeError):
    """Bad input while reading shards: ``"{shard}: sample {key!r}: {problem}"``.

    Attributes ``shard``, ``key`` and ``problem`` hold the three parts for programmatic use.
    """

    def __init__(self, problem: str, shard: str | None = None, key: str | None = None):
        self.problem = problem
        self.shard = shard
        self.key = key
        where = []
        if shard is not None:
            where.append(str(shard))
        if key is not None:
            where.append(f"sample {key!r}")
        super().__init__(": ".join(where + [problem]))


class BuildError(RuntimeError):
    """Bad input while converting a source dataset into shards (names the source item)."""


class WriteError(BuildError):
    """A write that failed (full disk, read-only folder, file size limit): one line naming the path, the
    cause and what to do (``writes.write_error``); ``errno`` is the OSError's."""

    def __init__(self, message: str, path: str | None = None, errno: int | None = None):
        super().__init__(message)
        self.path, self.errno = path, errno


class ErrorPolicy:
    """Raise a :class:`DataError`, or (``on_error="skip"``) count it, log it and go on.

    ``shared_counter`` is an optional ``multiprocessing.Value`` so that skips counted in
    DataLoader worker processes are visible to the main process.
    """

    def __init__(self, on_error: OnError, shared_counter=None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.shared_counter = shared_counter
        self.skipped = 0  # samples skipped by this process
        self.events = 0  # number of distinct problems (a lost shard counts once)

    @property
    def skip(self) -> bool:
        return self.on_error == "skip"

    def handle(self, error: DataError, num_samples: int = 1) -> None:
        """Raise ``error``; or, when skipping, count ``num_samples`` lost samples and warn."""
        if not self.skip:
            raise error
        self.skipped += num_samples
        self.events += 1
        if self.shared_counter is not None:
            with self.shared_counter.get_lock():
                self.shared_counter.value += num_samples
        log.warning("on_error=skip: skipped %d sample(s): %s", num_samples, error)
