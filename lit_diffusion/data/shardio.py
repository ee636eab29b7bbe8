"""Reading shards: open a URL (local path, ``file:``, ``pipe:CMD``, ``http(s)://`` via curl) and
stream the samples of a tar file, with errors that name the shard, the sample and the problem.

The tar parser is a small streaming reader of ustar/GNU/pax headers. Unlike ``tarfile`` in
stream mode it verifies every header checksum (a corrupt header is an error, not a silent end
of archive) and requires the end-of-archive marker (a tar cut at a member boundary is reported
as truncated). gzip-compressed shards (``.tar.gz``) are detected by their magic bytes.
"""
from __future__ import annotations

import gzip
import os
import subprocess
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import DataError
from .filetype import describe, sniff

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b"0", b"\0", b"7")


@dataclass
class RawSample:
    """One sample as stored: ``members`` maps extension ("png", "cls", ...) to bytes."""

    key: str
    members: dict[str, bytes]
    url: str
    index: int  # position in its shard


class ShardStream:
    """An open shard: ``.file`` to read from; ``close(complete)`` checks a pipe's exit status."""

    def __init__(self, url: str):
        self.url, self.proc = url, None
        try:
            if url.startswith("pipe:"):
                self.proc = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE, bufsize=1 << 20)
                raw = self.proc.stdout
            elif url.startswith(("http://", "https://")):
                self.proc = subprocess.Popen(["curl", "-sSfL", url], stdout=subprocess.PIPE, bufsize=1 << 20)
                raw = self.proc.stdout
            else:
                path = url[len("file://"):] if url.startswith("file://") else url
                raw = open(path, "rb", buffering=1 << 20)
        except OSError as e:
            raise DataError(f"cannot open shard: {e.strerror or e}", shard=url) from None
        self.file: BinaryIO = raw
        if raw.peek(2)[:2] == b"\x1f\x8b":
            self.file = gzip.GzipFile(fileobj=raw, mode="rb")
        self._raw = raw

    def failed_status(self) -> int | None:
        """A pipe's non-zero exit status once it has ended (waits up to 5 s), else None."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None
        return rc or None

    def close(self, complete: bool) -> None:
        """Close; when the whole stream was read (``complete``), a failed command is an error."""
        self._raw.close()
        if self.proc is None:
            return
        if not complete and self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        if complete and rc != 0:
            raise DataError(f"command exited with status {rc} (its stderr is above)", shard=self.url)


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for big sizes
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    field = field.rstrip(b"\0 ").lstrip(b" ")
    return int(field, 8) if field else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = _octal(header[148:156])
    except ValueError:  # not even a number where a tar header keeps its checksum
        return False
    unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in header[:148] + header[156:]) + 8 * 32
    return stored == signed


def _pax_path(data: bytes) -> str | None:
    path, pos = None, 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1:pos + length - 1]
        k, _, v = record.partition(b"=")
        if k == b"path":
            path = v.decode("utf-8")
        pos += length
    return path


def iter_members(f: BinaryIO, url: str) -> Iterator[tuple[str, bytes]]:
    """Yield (name, data) of the regular files in a tar stream; DataError on damage."""
    offset = 0
    long_name: str | None = None
    current = "(start of archive)"

    def damaged(problem: str):
        return DataError(f"corrupt or truncated tar: {problem} at byte {offset} (after member {current!r})",
                         shard=url)

    while True:
        try:
            header = _read_exact(f, BLOCK)
        except (OSError, EOFError) as e:  # gzip errors, broken pipes
            raise damaged(f"read error: {e}") from None
        kind = sniff(header) if offset == 0 and (len(header) < BLOCK or not _checksum_ok(header)) else None
        if kind is not None:  # the wrong kind of file, not a damaged shard
            raise DataError(f"this is {describe(kind)}, not a tar shard: expected WebDataset .tar shards (a folder "
                            f"with dataset.json, or shard files); make them with `lit-diffusion data build SOURCE ... "
                            f"--out DIR` (an image folder: SOURCE imagefolder)", shard=url)
        if len(header) < BLOCK:
            raise damaged("stream ends without the end-of-archive marker" if not header else "short header")
        if header == _ZERO_BLOCK:
            return
        if not _checksum_ok(header):
            raise damaged("bad header checksum")
        try:
            size = _octal(header[124:136])
        except ValueError:
            raise damaged("bad size field") from None
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
            if prefix:
                name = f"{prefix}/{name}"
        typeflag = header[156:157]
        padded = size + (-size % BLOCK)
        try:
            data = _read_exact(f, padded)
        except (OSError, EOFError) as e:
            raise damaged(f"read error: {e}") from None
        if len(data) < padded:
            raise damaged(f"member {name!r} holds {len(data)} of {padded} bytes")
        offset += BLOCK + padded
        data = data[:size]
        if typeflag in _REGULAR:
            name, long_name = long_name or name, None
            current = name
            yield name, data
        elif typeflag == b"L":
            long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif typeflag == b"x":
            long_name = _pax_path(data) or long_name
        # directories, links, global headers: nothing to read


def split_name(name: str) -> tuple[str, str]:
    """WebDataset convention: key is the path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, ext if dot else ""


def iter_samples(f: BinaryIO, url: str) -> Iterator[RawSample]:
    """Group consecutive members with the same key into samples.

    When the tar is damaged, the sample read just before the damage is still yielded (the
    reader's member check decides whether it is complete), then the error is raised."""
    key, members, index = None, {}, 0
    names = iter_members(f, url)
    while True:
        try:
            name, data = next(names)
        except StopIteration:
            break
        except DataError:
            if key is not None:
                yield RawSample(key, members, url, index)
            raise
        k, ext = split_name(name)
        if k != key:
            if key is not None:
                yield RawSample(key, members, url, index)
                index += 1
            key, members = k, {}
        if ext in members:
            raise DataError(f"duplicate member {name!r}", shard=url, key=k)
        members[ext] = data
    if key is not None:
        yield RawSample(key, members, url, index)


def read_shard(url: str, skip: int = 0, take: int | None = None,
               expected: int | None = None) -> Iterator[RawSample]:
    """Samples ``skip .. skip+take`` of a shard. ``expected`` is the count from dataset.json: a
    shard with fewer samples is truncated, one read to its end with more is stale/foreign."""
    stream = ShardStream(url)
    complete = False
    try:
        stop = None if take is None else skip + take
        to_end = stop is None or (expected is not None and stop >= expected)
        n = 0
        samples = iter_samples(stream.file, url)
        while True:
            try:
                sample = next(samples)
            except StopIteration:
                break
            except DataError as e:  # a failed command explains a damaged stream better
                rc = stream.failed_status()
                if rc is not None:
                    raise DataError(f"command exited with status {rc} (its stderr is above)", shard=url) from e
                raise
            if stop is not None and n >= stop:
                raise DataError(f"shard holds more samples than the {expected} in dataset.json "
                                f"(stale dataset.json?)", shard=url, key=sample.key)
            if n >= skip:
                yield sample
            n += 1
            if n == stop and not to_end:
                return
        if stop is not None and n < stop:
            raise DataError(f"truncated shard: found {n} samples, dataset.json says {expected}"
                            if expected is not None else f"shard ends after {n} samples, needed {stop}",
                            shard=url)
        complete = True
    finally:
        stream.close(complete)


def local_path(url: str) -> str | None:
    """The file path of a local shard URL, or None for pipes and remote URLs."""
    if url.startswith(("pipe:", "http://", "https://")):
        return None
    return url[len("file://"):] if url.startswith("file://") else os.fspath(url)
