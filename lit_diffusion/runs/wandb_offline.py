"""Read what a W&B *offline* run logged, straight from its ``run-<id>.wandb`` files.

Offline runs (``WANDB_MODE=offline``) write no ``config.yaml`` or ``wandb-summary.json``,
and wandb 0.31 ships no Python reader for its transaction log, so tests that check what
training logged parse the log here.

File layout (checked against files written by wandb 0.31):

* a 7-byte file header: ``b":W&B"``, magic ``0xBEE1`` (uint16, little endian), version 0;
* then a LevelDB-style log: 32 KiB blocks (the file header counts towards block 0), each
  fragment has a 7-byte header ``crc32 (uint32 LE) | length (uint16 LE) | type (uint8)``
  with types FULL=1, FIRST=2, MIDDLE=3, LAST=4. The checksum is plain zlib CRC-32 (not
  LevelDB's masked CRC-32C) over the type byte followed by the fragment bytes. A block
  tail shorter than 7 bytes is padding.
* Each reassembled payload is a serialized ``wandb_internal_pb2.Record``.

Config and summary values are stored as plain JSON (no ``{"value": ...}`` wrapper; that
wrapper only appears in ``config.yaml`` of online runs), so no unwrapping is done.
"""
from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

__all__ = ["OfflineRun", "load_offline_runs", "read_records", "run_directories"]

Record = wandb_internal_pb2.Record

BLOCK_SIZE = 32768
_FILE_HEADER = struct.Struct("<4sHB")
_FILE_IDENT, _FILE_MAGIC, _FILE_VERSION = b":W&B", 0xBEE1, 0
_FRAG_HEADER = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4

# Key W&B uses for its own bookkeeping in config and summary; not something training logged.
_INTERNAL_KEY = "_wandb"

_DIR_RE = re.compile(r"^offline-run-(\d{8}_\d{6})-(.+)$")


def read_records(path: str | Path, *, allow_partial_tail: bool = False) -> list[Record]:
    """Parse one ``.wandb`` file into its records, in write order.

    Raises ``ValueError`` naming the file and byte offset on a bad file header, a bad
    checksum, an unknown fragment type, a fragment out of sequence or a truncated file.

    ``allow_partial_tail=True`` silently drops an incomplete record at the very end of the
    file instead of raising. Use it for runs whose process was killed: wandb-core writes
    the log in whole 32 KiB blocks, so a SIGKILL leaves the file cut at a block boundary
    (possibly mid-record) and loses whatever was still buffered.
    """
    path = Path(path)
    data = path.read_bytes()

    def fail(offset: int, what: str) -> ValueError:
        return ValueError(f"{path}: corrupt W&B log at byte offset {offset}: {what}")

    if len(data) < _FILE_HEADER.size:
        raise fail(0, f"file is {len(data)} bytes, shorter than the {_FILE_HEADER.size}-byte header")
    ident, magic, version = _FILE_HEADER.unpack_from(data, 0)
    if ident != _FILE_IDENT or magic != _FILE_MAGIC:
        raise fail(0, f"not a W&B transaction log (header {data[:_FILE_HEADER.size]!r})")
    if version != _FILE_VERSION:
        raise fail(0, f"unsupported log version {version}")

    records: list[Record] = []
    pending: list[bytes] | None = None  # fragments of a record begun by a FIRST fragment
    pending_start = 0
    offset = _FILE_HEADER.size
    end = len(data)
    while offset < end:
        block_left = BLOCK_SIZE - offset % BLOCK_SIZE
        if block_left < _FRAG_HEADER.size:
            # Block trailer too small for a header: the writer pads it with zeros.
            if data[offset : offset + block_left].strip(b"\x00"):
                raise fail(offset, "non-zero bytes in block padding")
            offset += block_left
            continue
        if end - offset < _FRAG_HEADER.size:
            if allow_partial_tail:
                break
            raise fail(offset, f"truncated fragment header ({end - offset} of {_FRAG_HEADER.size} bytes)")
        crc, length, kind = _FRAG_HEADER.unpack_from(data, offset)
        body_start = offset + _FRAG_HEADER.size
        if length > block_left - _FRAG_HEADER.size:
            raise fail(offset, f"fragment length {length} runs past the end of its block")
        if body_start + length > end:
            if allow_partial_tail:
                break
            raise fail(offset, f"truncated fragment (needs {length} bytes, {end - body_start} left)")
        body = data[body_start : body_start + length]
        if kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
            raise fail(offset, f"unknown fragment type {kind}")
        if zlib.crc32(bytes([kind]) + body) != crc:
            raise fail(offset, "checksum mismatch")

        if kind in (_FULL, _FIRST):
            if pending is not None:
                raise fail(offset, f"new record starts before the one at offset {pending_start} ended")
            if kind == _FULL:
                records.append(_parse(body, path, offset))
            else:
                pending, pending_start = [body], offset
        else:
            if pending is None:
                raise fail(offset, "continuation fragment without a first fragment")
            pending.append(body)
            if kind == _LAST:
                records.append(_parse(b"".join(pending), path, pending_start))
                pending = None
        offset = body_start + length

    if pending is not None and not allow_partial_tail:
        raise fail(pending_start, "file ends inside a multi-fragment record")
    return records


def _parse(payload: bytes, path: Path, offset: int) -> Record:
    record = Record()
    try:
        record.ParseFromString(payload)
    except Exception as exc:  # protobuf raises DecodeError; keep the file and offset in the message
        raise ValueError(f"{path}: corrupt W&B log at byte offset {offset}: bad record payload ({exc})") from exc
    return record


@dataclass
class OfflineRun:
    """Everything one run id logged, merged over all its offline-run directories (oldest first)."""

    run_id: str
    directories: list[Path] = field(default_factory=list)
    project: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> list[Any]:
        """Values of one top-level history key, in logging order, skipping rows without it."""
        return [row[key] for row in self.history if key in row]


def _item_path(item: Any) -> list[str]:
    # Items carry either a flat ``key`` or a ``nested_key`` path (e.g. ["d", "x"] for {"d": {"x": ..}}).
    return list(item.nested_key) or [item.key]


def _decode(item: Any, where: str) -> Any:
    try:
        return json.loads(item.value_json)  # accepts NaN / Infinity, which W&B writes for non-finite floats
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: bad JSON value for {_item_path(item)}: {item.value_json!r}") from exc


def _set_path(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[keys[-1]] = value


def _del_path(target: dict[str, Any], keys: list[str]) -> None:
    for key in keys[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(keys[-1], None)


def _apply_items(target: dict[str, Any], updates: Any, removes: Any, where: str) -> None:
    for item in updates:
        path = _item_path(item)
        if path[0] != _INTERNAL_KEY:
            _set_path(target, path, _decode(item, where))
    for item in removes:
        _del_path(target, _item_path(item))


def _merge_file(run: OfflineRun, wandb_file: Path, allow_partial_tail: bool) -> None:
    where = str(wandb_file)
    for record in read_records(wandb_file, allow_partial_tail=allow_partial_tail):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            if record.run.run_id and record.run.run_id != run.run_id:
                raise ValueError(f"{where}: run record has id {record.run.run_id!r}, expected {run.run_id!r}")
            run.project = record.run.project or run.project
            _apply_items(run.config, record.run.config.update, record.run.config.remove, where)
        elif kind == "config":
            _apply_items(run.config, record.config.update, record.config.remove, where)
        elif kind == "summary":
            _apply_items(run.summary, record.summary.update, record.summary.remove, where)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set_path(row, _item_path(item), _decode(item, where))
            run.history.append(row)


def run_directories(wandb_dir: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """Map run id -> [(offline-run directory, its .wandb file)], oldest directory first.

    The run id is taken from the ``run-<id>.wandb`` file name because ids may contain
    hyphens, which makes the directory name ambiguous when W&B appends ``-1``, ``-2``...
    to directories started within the same second.
    """
    root = _resolve_wandb_dir(Path(wandb_dir))
    found: dict[str, list[tuple[tuple[str, int], Path, Path]]] = {}
    for directory in root.iterdir():
        match = _DIR_RE.match(directory.name)
        if not match or directory.is_symlink() or not directory.is_dir():
            continue
        timespec, rest = match.groups()
        for wandb_file in directory.glob("run-*.wandb"):
            run_id = wandb_file.name[len("run-") : -len(".wandb")]
            if rest == run_id:
                suffix = 0
            elif rest.startswith(run_id + "-") and rest[len(run_id) + 1 :].isdigit():
                suffix = int(rest[len(run_id) + 1 :])
            else:
                continue
            found.setdefault(run_id, []).append(((timespec, suffix), directory, wandb_file))
    return {rid: [(d, f) for _, d, f in sorted(entries)] for rid, entries in found.items()}


def _resolve_wandb_dir(path: Path) -> Path:
    # Accept the WANDB_DIR root (holding wandb/ or, when it exists, .wandb/) or the wandb dir itself.
    for name in ("wandb", ".wandb"):
        if (path / name).is_dir():
            return path / name
    if path.is_dir():
        return path
    raise FileNotFoundError(f"{path}: no such directory")


RESUME_KEY = "trainer/global_step"  # the step Lightning's WandbLogger logs with every row


def load_offline_runs(wandb_dir: str | Path, *, allow_partial_tail: bool = False,
                      resume_key: str | None = RESUME_KEY) -> dict[str, OfflineRun]:
    """Read every offline run under ``wandb_dir``, merging resumed runs that share an id.

    Directories are processed oldest first: histories are concatenated, config and summary
    updates applied in order (later wins). Note that an offline resume cannot know the
    previous step, so ``_step`` restarts at 0 in each directory unless steps are logged
    explicitly. The ``_wandb`` bookkeeping key is left out of config and summary.

    A resumed directory supersedes the rows of earlier ones that it logs again: the same ``resume_key``
    value with the same metric names. A process killed after its last checkpoint may have logged steps that
    the resume trains and logs again (online, W&B's "rewind" of a run to a step does the same). None keeps
    every row.
    """
    runs: dict[str, OfflineRun] = {}
    for run_id, entries in run_directories(wandb_dir).items():
        run = OfflineRun(run_id=run_id)
        for directory, wandb_file in entries:
            run.directories.append(directory)
            earlier = len(run.history)
            _merge_file(run, wandb_file, allow_partial_tail)
            if resume_key is not None and earlier:
                _supersede(run, earlier, resume_key)
        runs[run_id] = run
    return runs


_BOOKKEEPING = {"_step", "_runtime", "_timestamp"}  # W&B's own keys of every history row


def _row_identity(row: dict[str, Any], key: str) -> tuple[Any, frozenset[str]]:
    return row[key], frozenset(row.keys() - _BOOKKEEPING)


def _supersede(run: OfflineRun, earlier: int, key: str) -> None:
    """Drop rows before index `earlier` that a row from there logs again (same `key`, same metric names)."""
    again = {_row_identity(row, key) for row in run.history[earlier:] if key in row}
    kept = [row for row in run.history[:earlier] if key not in row or _row_identity(row, key) not in again]
    run.history[:] = kept + run.history[earlier:]
