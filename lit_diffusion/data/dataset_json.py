"""`dataset.json`: the description written beside the shards; the contract with training.

Fields (see data/README.md for the full description)::

    num_samples   total samples over all shards
    shape         [C, H, W] for images and latents, [D] for vectors (one sample, no batch dim)
    channels      C (1 for [D] vectors)
    num_classes   0 when unlabeled
    class_names   list of num_classes names
    mean, std     per-channel statistics (pixels scaled to [0, 1]; raw values for npy)
    fingerprint   sha256 of the sorted per-sample content digests (independent of order/sharding)
    format        "png" | "jpg" | "npy"
    kind          "image" | "tensor" | "pair" (pair: noise.npy + target.npy per sample)
    members       member extensions of every sample, e.g. ["png", "cls"]
    shards        [{"name", "count", "bytes", "sha256"}], in order
    build         how it was built: source, options, command line, package version
    latent_scale, latent_shift   for kind "tensor": the reader returns (z - shift) * scale
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DATASET_JSON = "dataset.json"
FORMAT_VERSION = 1
KINDS = ("image", "tensor", "pair")
FORMATS = ("png", "jpg", "webp", "npy")  # webp: only in shards read without dataset.json


@dataclass
class ShardEntry:
    name: str
    count: int
    bytes: int = 0
    sha256: str = ""


@dataclass
class DatasetInfo:
    num_samples: int
    shape: list[int]
    channels: int
    num_classes: int
    class_names: list[str]
    mean: list[float]
    std: list[float]
    fingerprint: str
    format: str
    shards: list[ShardEntry]
    build: dict[str, Any] = field(default_factory=dict)
    kind: str = "image"
    members: list[str] = field(default_factory=list)
    latent_scale: float | None = None
    latent_shift: float | None = None
    version: int = FORMAT_VERSION

    def __post_init__(self):
        self.shards = [s if isinstance(s, ShardEntry) else ShardEntry(**s) for s in self.shards]
        self.validate()

    def validate(self) -> None:
        def bad(msg: str):
            raise ValueError(f"dataset.json: {msg}")

        if self.kind not in KINDS:
            bad(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.format not in FORMATS:
            bad(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.kind == "image" and self.format == "npy" or self.kind != "image" and self.format != "npy":
            bad(f"kind {self.kind!r} does not go with format {self.format!r}")
        if len(self.shape) not in (1, 3) or any(int(d) <= 0 for d in self.shape):
            bad(f"shape must be [C, H, W] or [D] with positive sizes, got {self.shape}")
        if self.kind == "image" and (len(self.shape) != 3 or self.shape[0] not in (1, 3)):
            bad(f"image shape must be [1 or 3, H, W], got {self.shape}")
        if len(self.class_names) != self.num_classes:
            bad(f"{len(self.class_names)} class_names for num_classes={self.num_classes}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            bad(f"mean/std must have {self.channels} entries (channels)")
        total = sum(s.count for s in self.shards)
        if total != self.num_samples:
            bad(f"shard counts add up to {total}, num_samples is {self.num_samples}")
        if any(s.count <= 0 for s in self.shards):
            bad("every shard must hold at least one sample")

    @property
    def labeled(self) -> bool:
        return self.num_classes > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.kind != "tensor":
            d.pop("latent_scale")
            d.pop("latent_shift")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetInfo":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"dataset.json: unknown fields {unknown} (written by a newer version?)")
        if d.get("version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"dataset.json: version {d['version']} is newer than {FORMAT_VERSION}")
        return cls(**d)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (shard checksums, weight files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_dataset_json(info: DatasetInfo, folder: str | os.PathLike) -> Path:
    path = Path(folder) / DATASET_JSON
    write_json_atomic(info.to_dict(), path)
    return path


def parse_dataset_json(text: str | bytes, where: str) -> DatasetInfo:
    try:
        return DatasetInfo.from_dict(json.loads(text))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: invalid dataset.json: {e}") from None


def read_dataset_json(path: str | os.PathLike) -> DatasetInfo:
    """Read a local dataset.json (a folder holding one, or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / DATASET_JSON
    return parse_dataset_json(path.read_text(), str(path))
