"""ShardSink: samples (their tar records) into numbered shards ``PREFIX-000000.tar, ...``, each written under a
temporary name and renamed when complete (``writes.TempFile``), rolling over by count and by bytes."""
from __future__ import annotations

import logging
from pathlib import Path

from .dataset_json import ShardEntry
from .errors import BuildError
from .writes import TempFile

log = logging.getLogger("lit_diffusion.data")

END_OF_ARCHIVE = bytes(1024)  # two zero blocks


class ShardSink:
    """Writes samples into numbered shards, rolling over by count and by bytes; atomic renames.

    A shard file is the samples' tar records followed by the end-of-archive marker (no padding to
    a 10 KiB record, which readers do not need), so its size is known before it is written. Errors
    name the shard's place in ``shown`` (the dataset folder), not in the staging folder.
    """

    def __init__(self, folder: Path, prefix: str, max_count: int, max_bytes: int | None,
                 shown: Path | None = None):
        self.folder, self.prefix, self.shown = folder, prefix, shown or folder
        self.max_count, self.max_bytes = max_count, max_bytes
        self.entries: list[ShardEntry] = []
        self._file: TempFile | None = None
        self._count = 0

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.entries):06d}.tar"
        self._file = TempFile(self.folder / name, self.shown / name)
        self._name, self._count = name, 0

    def _finish(self) -> None:
        self._file.write(END_OF_ARCHIVE)
        self._file.commit()
        self.entries.append(ShardEntry(self._name, self._count, self._file.size, self._file.digest.hexdigest()))
        self._file = None

    def add(self, blob: bytes, origin: str) -> None:
        """Append one sample (its tar records); start a new shard first if a limit would be passed."""
        size = len(blob) + len(END_OF_ARCHIVE)
        if self.max_bytes is not None and size > self.max_bytes:
            raise BuildError(f"{origin}: one sample takes {size} bytes as a shard, more than "
                             f"shard_bytes={self.max_bytes}")
        if self._file is not None and (
            self._count >= self.max_count
            or self.max_bytes is not None and self._file.size + size > self.max_bytes
        ):
            self._finish()
        if self._file is None:
            self._open()
        self._file.write(blob)
        self._count += 1

    def close(self) -> list[ShardEntry]:
        if self._file is not None:
            self._finish()
        return self.entries

    def abort(self) -> None:
        """Remove the shard being written and every shard this sink finished; never raises."""
        if self._file is not None:
            self._file.discard()
            self._file = None
        for entry in self.entries:
            try:
                (self.folder / entry.name).unlink(missing_ok=True)
            except OSError as e:
                log.warning("could not remove %s: %s", self.folder / entry.name, e)
