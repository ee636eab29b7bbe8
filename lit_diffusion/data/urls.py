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

Shards without a dataset.json (a folder of .tar files, or URLs with none beside them) are read
anyway: ``infer.py`` scans them once for the counts, image member, labels and shape.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from webdataset.shardlists import expand_urls

from .dataset_json import DATASET_JSON, DatasetInfo, parse_dataset_json
from .errors import DataError
from .infer import InferOptions, infer_info
from .shardio import ShardStream, local_path

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


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


def build_hint(folder: str) -> str:
    return (f"to build shards there: `lit-diffusion data build SOURCE ... --out {folder}` "
            f"(SOURCE: digits, mnist, cifar10, imagefolder, npz, pairs; see data/README.md)")


def _folder_shards(folder: str) -> list[str]:
    """The shard files of a folder without dataset.json, in name order; an error says what to do."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(SHARD_SUFFIXES) and not n.startswith("."))
    if not names:
        raise DataError(f"no dataset.json and no .tar shards in this folder; {build_hint(folder)}", shard=folder)
    return [os.path.join(folder, n) for n in names]


def _check_local_spec(spec: str, path: str) -> None:
    """A local path that is not there and is no pattern is a mistyped folder or shard: say so now,
    rather than look for a dataset.json beside it (the parent folder's)."""
    if os.path.exists(path) or any(c in spec for c in "{}*?[") or "::" in spec:
        return
    parent = os.path.dirname(path.rstrip("/")) or "."
    near = sorted(os.listdir(parent))[:8] if os.path.isdir(parent) else []
    hint = f" ({parent} holds {near})" if near else f" ({parent} does not exist either)"
    raise DataError(f"no such shard folder or file{hint}; {build_hint(path)}", shard=spec)


def _from_json(spec: str, dataset_json: str | None) -> tuple[list[str], list[int], DatasetInfo, str]:
    """URLs, counts and info of a folder holding dataset.json or of a dataset.json location."""
    path = local_path(spec)
    location = spec if spec.rstrip("/").endswith(DATASET_JSON) else os.path.join(path, DATASET_JSON)
    info = read_json_at(dataset_json or location)
    return [_sibling(location, s.name) for s in info.shards], [s.count for s in info.shards], info, \
        dataset_json or location


def _match_counts(urls: list[str], info: DatasetInfo, dataset_json: str) -> list[int]:
    by_name = {s.name: s.count for s in info.shards}
    counts = []
    for url in urls:
        names = [n for n in by_name if n in url]
        if not names:
            raise DataError(f"no shard of this name in {dataset_json}", shard=url)
        counts.append(by_name[max(names, key=len)])
    return counts


def _json_beside(first: str) -> str | None:
    """The dataset.json beside a local or http(s) shard, when there is one (pipe: commands: never)."""
    if first.startswith("pipe:"):
        return None
    candidate = _sibling(first, DATASET_JSON)
    path = local_path(candidate)
    if path is not None:
        return candidate if os.path.isfile(path) else None
    try:
        read_json_at(candidate)
    except DataError:
        return None
    return candidate


def _inferred(urls: list[str], infer: InferOptions | None) -> tuple[list[int], DatasetInfo]:
    info = infer_info(urls, infer or InferOptions())
    return [s.count for s in info.shards], info


def resolve_shards(spec: str, dataset_json: str | None = None, check_exists: bool = True,
                   infer: InferOptions | None = None) -> ShardSet:
    """Shard URLs, counts and dataset.json of a specification; ``infer`` reads shards without dataset.json."""
    if not spec:
        raise ValueError("empty shard specification")
    path = local_path(spec)
    if path is not None:
        _check_local_spec(spec, path)
    is_json = spec.rstrip("/").endswith(DATASET_JSON)
    if path is not None and os.path.isdir(path) and not is_json and dataset_json is None \
            and not os.path.isfile(os.path.join(path, DATASET_JSON)):
        urls = _folder_shards(path)
        counts, info = _inferred(urls, infer)
        json_location = os.path.join(path, "(inferred)")
    elif is_json or (path is not None and os.path.isdir(path)):
        urls, counts, info, json_location = _from_json(spec, dataset_json)
    else:
        urls = expand_urls(spec)
        if len(set(urls)) != len(urls):
            raise ValueError(f"shards {spec!r}: a URL is listed twice")
        json_location = dataset_json or _json_beside(urls[0])
        if json_location is None and urls[0].startswith("pipe:") and infer is None:
            raise ValueError(f"shards {spec!r} are pipe: commands; pass dataset_json= (the dataset.json path or "
                             f"URL) so that the sample counts are known, or an image_key/label_key to scan them")
        first = local_path(urls[0])
        if json_location is None and first is not None and not os.path.isfile(first):
            raise DataError(f"dataset.json not found at {_sibling(urls[0], DATASET_JSON)}, and the first shard "
                            f"does not exist either; {build_hint(os.path.dirname(first) or '.')}", shard=urls[0])
        if json_location is None:  # anyone's shards: no dataset.json
            counts, info = _inferred(urls, infer)
            json_location = _sibling(urls[0], "(inferred)")
        else:
            info = read_json_at(json_location)
            counts = _match_counts(urls, info, json_location)
    if check_exists:
        for url in urls:
            p = local_path(url)
            if p is not None and not os.path.isfile(p):
                raise DataError("shard does not exist (missing path)", shard=url)
    return ShardSet(list(urls), counts, info, str(json_location))


def describe(shards: ShardSet) -> str:
    where = Path(shards.json_location).parent if not _is_remote(shards.json_location) else shards.json_location
    return f"{len(shards.urls)} shard(s), {shards.num_samples} samples ({where})"
