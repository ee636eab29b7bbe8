"""Resolve a shard specification into shard URLs, their sample counts and the dataset.json.

A specification is one of:

* a local folder holding ``dataset.json`` (all of its shards), or the ``dataset.json`` itself
  (local path or ``http(s)://`` URL; shard URLs are taken relative to it);
* a brace pattern or list of URLs joined by ``::`` (``/data/shard-{000000..000009}.tar``,
  ``pipe:aws s3 cp s3://bucket/shard-{000000..000009}.tar -``, ``https://host/ds/shard-000000.tar``).
  The dataset.json is then the explicit ``dataset_json`` argument, or the one beside the first
  shard for local paths and http(s) URLs. ``pipe:`` commands need the explicit argument.

Each URL is matched to the dataset.json shard whose name it contains (the longest such name), to
know its sample count. Local shards that do not exist are reported before any worker starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from webdataset.shardlists import expand_urls

from .dataset_json import DATASET_JSON, DatasetInfo, parse_dataset_json
from .errors import DataError
from .shardio import ShardStream, local_path


@dataclass
class ShardSet:
    urls: list[str]
    counts: list[int]
    info: DatasetInfo
    json_location: str

    @property
    def num_samples(self) -> int:
        return sum(self.counts)


def _is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def read_json_at(location: str) -> DatasetInfo:
    """Read a dataset.json from a local path, an http(s) URL or a ``pipe:`` command."""
    path = local_path(location)
    if path is not None:
        if os.path.isdir(path):
            path = os.path.join(path, DATASET_JSON)
        if not os.path.isfile(path):
            raise DataError(f"dataset.json not found at {path}", shard=location)
        with open(path, "rb") as f:
            return parse_dataset_json(f.read(), path)
    stream = ShardStream(location)
    try:
        text = stream.file.read()
    finally:
        stream.close(complete=True)
    return parse_dataset_json(text, location)


def _sibling(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name if "/" in url else name


def resolve_shards(spec: str, dataset_json: str | None = None, check_exists: bool = True) -> ShardSet:
    if not spec:
        raise ValueError("empty shard specification")
    path = local_path(spec)
    is_json = spec.rstrip("/").endswith(DATASET_JSON)
    if is_json or (path is not None and os.path.isdir(path)):
        location = spec if is_json else os.path.join(path, DATASET_JSON)
        info = read_json_at(dataset_json or location)
        urls = [_sibling(location, s.name) for s in info.shards]
        counts = [s.count for s in info.shards]
        json_location = dataset_json or location
    else:
        urls = expand_urls(spec)
        if dataset_json is None:
            first = urls[0]
            if first.startswith("pipe:"):
                raise ValueError(f"shards {spec!r} are pipe: commands; pass dataset_json= (the dataset.json "
                                 f"path or URL) so that the sample counts are known")
            dataset_json = _sibling(first, DATASET_JSON)
        info = read_json_at(dataset_json)
        json_location = dataset_json
        by_name = {s.name: s.count for s in info.shards}
        counts = []
        for url in urls:
            names = [n for n in by_name if n in url]
            if not names:
                raise DataError(f"no shard of this name in {dataset_json}", shard=url)
            counts.append(by_name[max(names, key=len)])
        if len(set(urls)) != len(urls):
            raise ValueError(f"shards {spec!r}: a URL is listed twice")
    if check_exists:
        for url in urls:
            p = local_path(url)
            if p is not None and not os.path.isfile(p):
                raise DataError("shard does not exist (missing path)", shard=url)
    return ShardSet(list(urls), counts, info, str(json_location))


def describe(shards: ShardSet) -> str:
    where = Path(shards.json_location).parent if not _is_remote(shards.json_location) else shards.json_location
    return f"{len(shards.urls)} shard(s), {shards.num_samples} samples ({where})"
