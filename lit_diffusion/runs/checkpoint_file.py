"""The one door every checkpoint is opened through: `open_checkpoint(path)`.

A file is loaded once per process and file stamp (path, size, modification time), memory-mapped so that the
record costs no weight reads; its content hash is checked once, before any tensor leaves the door; the full dict
goes to one caller as its own copy in memory (no mapping of the file outlives the call: the file may be replaced
or deleted by checkpoint rotation, and a caller may edit what it got); a later `full()` loads the file again.
The record's fields are pickled scalars the hash does not cover, so reading them needs no hash check.

A sharded checkpoint is a folder: Lightning's ModelParallel/FSDP strategies write a torch.distributed.checkpoint
(DCP) folder with their `meta.pt` (every field but the weights) beside the shards. Its record is read from
`meta.pt` and the DCP metadata (tensor shapes); its weights are read only by the strategy that resumes it.
A bare DCP folder (`distributed.fsdp2.save_sharded`) has no record and is refused with a message.
A DeepSpeed folder (`latest` + a tag folder) is read by runs/deepspeed_folder.py: its record from rank 0's
module states, its `full()` consolidated from the ranks' partitions in this process."""
from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import torch

from lit_diffusion.runs.content_hash import CheckpointError, check_content
from lit_diffusion.runs.deepspeed_folder import consolidated, fields, is_deepspeed_folder, module_states_file
from lit_diffusion.runs.file_format import check_torch_file
from lit_diffusion.runs.record import BACKBONE_PREFIX, CheckpointRecord, record_of

SHARDED_META = "meta.pt"  # Lightning's name for the non-tensor part of a sharded checkpoint
DCP_METADATA = ".metadata"  # torch.distributed.checkpoint's index of a folder's tensors
KEPT_DICTS = 4  # loaded dicts kept for their next reader (a resume lookup opens last + best-k checkpoints)

_records: dict[tuple, CheckpointRecord] = {}  # by file stamp: a rewritten file has a new stamp
_verified: set[tuple] = set()  # stamps whose content matched their hash in this process
_loaded: OrderedDict[tuple, dict] = OrderedDict()  # loaded dicts not yet handed out, the newest last


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _load(path: Path) -> dict:
    """The checkpoint dict, memory-mapped on the CPU: tensors are read when touched."""
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def is_sharded(path: str | Path) -> bool:
    """Whether `path` is a torch.distributed.checkpoint folder (with or without Lightning's meta.pt) or a
    DeepSpeed checkpoint folder."""
    path = Path(path)
    return path.is_dir() and ((path / DCP_METADATA).is_file() or (path / SHARDED_META).is_file()
                              or is_deepspeed_folder(path))


class OpenCheckpoint:
    """A checkpoint behind the door: its `record`, `verify()` and the verified `full()` dict."""

    def __init__(self, path: Path, stamp: tuple, record: CheckpointRecord):
        self.path, self._stamp, self.record = path, stamp, record

    def _contents(self, take: bool) -> dict:
        kept = _loaded.pop(self._stamp, None)
        contents = kept if kept is not None else _load(self.path)
        if not take:
            _keep(self._stamp, contents)
        return contents

    def verify(self) -> None:
        """Raise CheckpointError if the tensors do not match the hash written with them (once per file stamp)."""
        if self._stamp not in _verified:
            check_content(self._contents(take=False), self.path)
            _verified.add(self._stamp)

    def full(self) -> dict:
        """The whole checkpoint dict, verified; the caller owns it (tensors in memory, shared ones still shared)."""
        self.verify()
        return copy.deepcopy(self._contents(take=True))


class ShardedCheckpoint(OpenCheckpoint):
    """A DCP folder written by a sharded strategy: the record, no full dict (no hash is written for it)."""

    def verify(self) -> None:
        return None

    def full(self) -> dict:
        raise CheckpointError(f"checkpoint {self.path} is a sharded folder (torch.distributed.checkpoint): its weights "
                              "are read by the sharded strategy that resumes it (the same --trainer.strategy); for a "
                              "single file that every tool reads, train with --distributed.state_dict full")


def _keep(stamp: tuple, contents: dict) -> None:
    _loaded[stamp] = contents
    while len(_loaded) > KEPT_DICTS:
        _loaded.popitem(last=False)


def drop_loaded(keep: str | Path | None = None) -> None:
    """Forget the loaded dicts (their files stay mapped while kept), except the one of `keep`."""
    kept = None if keep is None else str(Path(keep).resolve())
    for stamp in [s for s in _loaded if s[0] != kept]:
        del _loaded[stamp]


def _open_sharded(path: Path) -> ShardedCheckpoint:
    if not (path / SHARDED_META).is_file():
        raise CheckpointError(f"{path} is a torch.distributed.checkpoint folder without {SHARDED_META} (as written by "
                              "distributed.fsdp2.save_sharded): it holds tensors only, no step or model record; load "
                              "it into a sharded module with distributed.fsdp2.load_sharded")
    from torch.distributed.checkpoint import FileSystemReader

    stamp = _stamp(path / SHARDED_META)
    if stamp not in _records:
        meta = torch.load(path / SHARDED_META, map_location="cpu", weights_only=False)
        shapes = FileSystemReader(str(path)).read_metadata().state_dict_metadata
        prefix = "state_dict." + BACKBONE_PREFIX  # Lightning stores the module's state under "state_dict"
        meta["state_dict"] = {k[len("state_dict."):]: torch.empty(tuple(getattr(v, "size", ())), device="meta")
                              for k, v in shapes.items() if k.startswith(prefix)}
        _records[stamp] = record_of(meta, path)
    return ShardedCheckpoint(path, stamp, _records[stamp])


class DeepSpeedCheckpoint(OpenCheckpoint):
    """A DeepSpeed folder: the record, and `full()` consolidated from its partitions (deepspeed_folder.py)."""

    def verify(self) -> None:
        return None

    def full(self) -> dict:
        return consolidated(self.path)


def _open(path: str | Path, keep: bool) -> OpenCheckpoint:
    path = Path(path)
    if is_deepspeed_folder(path):
        stamp = _stamp(module_states_file(path))
        if stamp not in _records:
            _records[stamp] = record_of(fields(path), path)
        return DeepSpeedCheckpoint(path, stamp, _records[stamp])
    if path.is_dir() and is_sharded(path):
        return _open_sharded(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    stamp = _stamp(path)
    if stamp not in _records:
        check_torch_file(path)  # random bytes, a torn file, a web page: refused before anything is unpickled
        contents = _load(path)
        _records[stamp] = record_of(contents, path)
        if keep:
            _keep(stamp, contents)
    return OpenCheckpoint(path, stamp, _records[stamp])


def open_checkpoint(path: str | Path) -> OpenCheckpoint:
    """The checkpoint at `path` (a file, or a sharded folder), its load kept for the `full()` that usually follows
    (a resume, a tool). Raises FileNotFoundError when there is none, CheckpointError when the file is not a whole
    torch checkpoint (checked from its bytes, before anything is unpickled), the loader's own error when its
    pickle does not load, and CheckpointError (from `verify`/`full`) when its tensors fail the content hash."""
    return _open(path, keep=True)


def read_record(path: str | Path) -> CheckpointRecord:
    """The record alone (no weight is read). A load made for it is not kept: a long-lived reader (a comparison)
    would otherwise hold files that checkpoint rotation deletes."""
    return _open(path, keep=False).record
