"""Read anyone's WebDataset shards: infer a ``DatasetInfo`` when there is no dataset.json.

Shards written by webdataset's ``ShardWriter``, img2dataset, or the timm / Hugging Face exports carry
an image member (jpg/jpeg/png/webp, or npy tensors), maybe a label (``cls``, or a field of ``json``),
and nothing that states the sample count per shard. The deterministic stream (``plan.py``) needs
those counts, so one scan reads every shard once (members are read, not decoded): it counts the
samples, checks that each has the image member, and collects the labels (class count = max + 1,
unless given). The shape comes from decoding the first image, or is the ``resolution`` given (each
image is then center-cropped and resized by the decoder). What was inferred is logged and recorded
in ``info.build["inferred"]``, which the decoder reads.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import asdict, dataclass

import numpy as np

from .dataset_json import DatasetInfo, ShardEntry
from .errors import DataError
from .shardio import RawSample, local_path, read_shard

log = logging.getLogger("lit_diffusion.data")

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "npy")
FORMAT_OF = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp", "npy": "npy"}


@dataclass(frozen=True)
class InferOptions:
    """How to read shards that have no dataset.json (each None: inferred)."""

    image_key: str | None = None  # member holding the image: jpg, jpeg, png, webp or npy
    label_key: str | None = None  # "cls", "json:FIELD", or "none" (unlabelled)
    num_classes: int | None = None  # classes (default: max label + 1 from the scan)
    resolution: int | None = None  # center-crop and resize every image to R x R

    def __post_init__(self):
        if self.image_key is not None and self.image_key not in IMAGE_KEYS:
            raise ValueError(f"image_key: must be one of {IMAGE_KEYS}, got {self.image_key!r}")
        label = self.label_key
        if label is not None and label not in ("cls", "none") and not label.startswith("json:"):
            raise ValueError(f"label_key: must be 'cls', 'json:FIELD' or 'none', got {label!r}")
        if self.num_classes is not None and self.num_classes < 0:
            raise ValueError(f"num_classes: must be >= 0, got {self.num_classes}")
        if self.resolution is not None and self.resolution < 1:
            raise ValueError(f"resolution: must be >= 1, got {self.resolution}")


def _pick_image_key(raw: RawSample, wanted: str | None) -> str:
    if wanted is not None:
        return wanted
    for key in IMAGE_KEYS:
        if key in raw.members:
            return key
    raise DataError(f"no image member ({'/'.join(IMAGE_KEYS)}) in the first sample; members are "
                    f"{sorted(raw.members)} (pass image_key)", raw.url, raw.key)


def _pick_label_key(raw: RawSample, wanted: str | None) -> str | None:
    if wanted == "none":
        return None
    if wanted is not None:
        return wanted
    return "cls" if "cls" in raw.members else None  # a json label needs its field named


def read_label(raw: RawSample, label_key: str) -> int:
    """The integer label of a sample from ``cls`` or a ``json`` field; DataError naming the sample."""
    member = "json" if label_key.startswith("json:") else label_key
    if member not in raw.members:
        raise DataError(f"missing {member!r} (members are {sorted(raw.members)})", raw.url, raw.key)
    data = raw.members[member]
    try:
        if member == "json":
            field = label_key[5:]
            value = json.loads(data)[field]
        else:
            value = data.decode("ascii").strip()
        return int(value)
    except (KeyError, TypeError):
        raise DataError(f"json has no field {label_key[5:]!r}", raw.url, raw.key) from None
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"bad label {data[:20]!r} in {member!r}", raw.url, raw.key) from None


def _peek_shape(raw: RawSample, image_key: str) -> list[int]:
    data = raw.members[image_key]
    if image_key == "npy":
        return [int(d) for d in np.load(io.BytesIO(data), allow_pickle=False).shape]
    from PIL import Image  # the header is enough for the size and mode

    with Image.open(io.BytesIO(data)) as im:
        channels = 1 if im.mode in ("L", "LA", "1", "I;16", "I", "F") else 3  # alpha is dropped
        return [channels, im.height, im.width]


def _fingerprint(urls: list[str], counts: list[int], sizes: list[int]) -> str:
    """No per-sample digests exist: the layout (names, counts, bytes) identifies the data for resume."""
    h = hashlib.sha256()
    for url, count, size in zip(urls, counts, sizes):
        h.update(f"{os.path.basename(url)}\0{count}\0{size}\n".encode())
    return h.hexdigest()


def _scan(urls: list[str], options: InferOptions) -> dict:
    """One pass over every shard: counts, the keys chosen, the first sample, the largest label."""
    found: dict = {"counts": [], "first": None, "image": None, "label": None, "max_label": -1}
    for url in urls:
        n = 0
        for raw in read_shard(url):
            if found["first"] is None:
                found["first"] = raw
                found["image"] = _pick_image_key(raw, options.image_key)
                found["label"] = _pick_label_key(raw, options.label_key)
            if found["image"] not in raw.members:
                raise DataError(f"missing {found['image']!r} (members are {sorted(raw.members)})", url, raw.key)
            if found["label"] is not None:
                found["max_label"] = max(found["max_label"], read_label(raw, found["label"]))
            n += 1
        if n == 0:
            raise DataError("shard holds no samples", shard=url)
        found["counts"].append(n)
    return found


def _cache_path(urls: list[str], options: InferOptions) -> str | None:
    """Where the inferred info of these local shards (as they are now: size, mtime) is kept, or None for
    remote shards. Why: the scan reads every byte; a resumed run, the config check and each rank on a node
    would otherwise repeat it."""
    h = hashlib.sha256(repr(sorted(asdict(options).items())).encode())
    for url in urls:
        path = local_path(url)
        if path is None or not os.path.isfile(path):
            return None
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    root = os.environ.get("LIT_DIFFUSION_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "lit_diffusion"))
    return os.path.join(root, "inferred", h.hexdigest() + ".json")


def infer_info(urls: list[str], options: InferOptions) -> DatasetInfo:
    """A DatasetInfo for shards without dataset.json (reads every shard once; cached for local shards)."""
    from .dataset_json import parse_dataset_json, write_json_atomic

    cache = _cache_path(urls, options)
    if cache is not None and os.path.isfile(cache):
        with open(cache, "rb") as f:
            info = parse_dataset_json(f.read(), cache)
        log.info("no dataset.json: inferred earlier from these %d shard(s) (unchanged): %d samples, shape %s, "
                 "%d classes (cached in %s)", len(urls), info.num_samples, info.shape, info.num_classes, cache)
        return info
    info = _infer(urls, options)
    if cache is not None:
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            write_json_atomic(info.to_dict(), cache)
        except OSError as e:  # a read-only home is no reason to fail
            log.info("could not cache the inferred description in %s: %s", cache, e)
    return info


def _infer(urls: list[str], options: InferOptions) -> DatasetInfo:
    found = _scan(urls, options)
    image, label = found["image"], found["label"]
    shape = _peek_shape(found["first"], image)
    if options.resolution is not None and image != "npy":
        shape = [shape[0], options.resolution, options.resolution]
    num_classes = 0
    if label is not None:
        num_classes = found["max_label"] + 1 if options.num_classes is None else options.num_classes
        if found["max_label"] >= num_classes:
            raise DataError(f"label {found['max_label']} found, but num_classes is {num_classes}", shard=urls[0])
    sizes = [os.path.getsize(p) if (p := local_path(u)) and os.path.isfile(p) else 0 for u in urls]
    channels = shape[0] if len(shape) == 3 else 1
    inferred = {"image": image, "label": label, "resolution": options.resolution, "stats": "not computed"}
    info = DatasetInfo(
        num_samples=sum(found["counts"]), shape=shape, channels=channels, num_classes=num_classes,
        class_names=[str(c) for c in range(num_classes)], mean=[0.5] * channels, std=[0.5] * channels,
        fingerprint=_fingerprint(urls, found["counts"], sizes), format=FORMAT_OF[image],
        kind="tensor" if image == "npy" else "image",
        members=[image] + ([label.split(":")[0]] if label else []),
        shards=[ShardEntry(os.path.basename(u), c, s) for u, c, s in zip(urls, found["counts"], sizes)],
        build={"inferred": inferred, "options": asdict(options)})
    log.info("no dataset.json: inferred from %d shard(s): %d samples, image %r, shape %s, %s", len(urls),
             info.num_samples, image, shape, f"label {label!r}, {num_classes} classes" if label else "unlabelled")
    if label is None and options.label_key is None and "json" in found["first"].members:
        log.info("the samples have a json member: label_key json:FIELD reads their labels from it")
    return info
