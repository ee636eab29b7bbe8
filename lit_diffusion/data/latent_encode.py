"""Encode an image dataset (shards or an image folder) into latent shards: posterior mean and std per image.

Output shard i holds the source samples [i * shard_size, (i + 1) * shard_size) in source order (training
shuffles), so a shard is a pure function of the source, the autoencoder and the options. That makes the job

- resumable: a finished shard (``shard-NNNNNN.tar`` and its ``.shard-NNNNNN.json`` record, both renamed into
  place when complete) is not encoded again;
- splittable over ranks: rank r of W encodes the shards i with i % W == r (RANK/WORLD_SIZE from torchrun,
  SLURM_PROCID/SLURM_NTASKS from srun), with no communication; the rank that finds every shard done writes
  dataset.json (any later run of the command does too).

Members per sample: ``npy`` (posterior mean, float32 [c, h, w]), ``std.npy`` (posterior std), with flips also
``flip.npy`` / ``flip.std.npy`` (the encoding of the mirrored image), and ``cls`` when labelled. dataset.json is
kind "tensor"; its ``build["latent"]`` records the autoencoder (kind, location, weights sha256) and the
normalisation (see ``latent_normalization.py``); ``latent_scale``/``latent_shift`` repeat a scalar normalisation
so that plain tensor readers return normalised posterior means.

The encoder is passed in as a function (images in [-1, 1] -> (mean, std)), so this module knows no autoencoder.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .. import __version__
from .dataset_json import DATASET_JSON, DatasetInfo, ShardEntry, write_dataset_json, write_json_atomic
from .encode import tar_record
from .sources import encode_npy
from lit_diffusion.stop_signals import Interrupted

from .errors import BuildError
from .latent_decode import FLIP_MEAN, FLIP_STD, MEAN, STD
from .latent_space import LATENT_KEY, AutoencoderRecord, LatentSpace
from .progress import Progress
from .shard_sink import END_OF_ARCHIVE
from .writes import TempFile, remove_stale, writing

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
PLAN_JSON = "encode.json"  # what every shard of this folder is encoded with; a resume must match it
PREFIX = "shard"


# ------------------------------------------------------------------ image sources, read by range

class ShardImages:
    """Images of a shard dataset (folder, dataset.json or URLs) in stored order."""

    def __init__(self, spec: str):
        from .decode import SampleDecoder
        from .urls import resolve_shards

        self.shards = resolve_shards(spec)
        info = self.shards.info
        if info.kind != "image":
            raise BuildError(f"data encode: {spec} holds {info.kind} samples, not images")
        self.decoder = SampleDecoder(info, labels=info.labeled)
        self.num_samples, self.class_names = info.num_samples, list(info.class_names)
        self.image_shape, self.describe = list(info.shape), {"source": "shards", "path": spec,
                                                             "fingerprint": info.fingerprint}

    def read(self, start: int, stop: int) -> Iterator[tuple[torch.Tensor, int | None]]:
        from .shardio import read_shard

        offset = 0
        for url, count in zip(self.shards.urls, self.shards.counts):
            lo, hi = max(start, offset), min(stop, offset + count)
            if lo < hi:
                for raw in read_shard(url, lo - offset, hi - lo, count):
                    self.decoder.check(raw)
                    sample = self.decoder.decode(raw)
                    yield sample["x"], sample.get("label")
            offset += count


class FolderImages:
    """Images of a folder (class sub-folders: labelled), converted to the autoencoder's channels and resized."""

    def __init__(self, root: str, channels: int, resolution: int | None):
        from .imagefolder import ImageFolderSource

        self.source = ImageFolderSource(root)
        self.mode, self.resolution = ("L" if channels == 1 else "RGB"), resolution
        self.num_samples, self.class_names = len(self.source), list(self.source.class_names)
        self.image_shape = list(self._image(0)[0].shape)
        self.describe = {"source": "imagefolder", "path": str(root), "files": self.num_samples}

    def _image(self, index: int) -> tuple[torch.Tensor, int | None]:
        from PIL import Image

        from .encode import center_crop_resize

        item = self.source.item(index)
        try:
            im = Image.open(io.BytesIO(item.image_bytes)).convert(self.mode)
        except Exception as e:  # PIL raises many types for bad files
            raise BuildError(f"{item.origin}: cannot decode image: {e}") from None
        a = np.asarray(center_crop_resize(im, self.resolution, "lanczos"))
        a = a[:, :, None] if a.ndim == 2 else a
        return torch.from_numpy(a.transpose(2, 0, 1).copy()), item.label  # PIL arrays are read-only

    def read(self, start: int, stop: int) -> Iterator[tuple[torch.Tensor, int | None]]:
        for i in range(start, stop):
            x, label = self._image(i)
            if list(x.shape) != self.image_shape:
                raise BuildError(f"{self.source.files[i]}: image of shape {list(x.shape)}, the first is "
                                 f"{self.image_shape}; pass --resolution R to resize every image")
            yield x, label


def open_images(path: str, channels: int, resolution: int | None):
    """Shards when `path` is a dataset (dataset.json or shard files), else an image folder."""
    p = Path(path)
    if not p.exists() and "::" not in path and "{" not in path and not path.startswith(("http", "pipe:")):
        raise FileNotFoundError(f"data encode: {path} does not exist (give shards or an image folder)")
    is_shards = not p.is_dir() or (p / DATASET_JSON).is_file() or any(p.glob("*.tar"))
    if is_shards:
        if resolution is not None:
            raise BuildError("data encode: --resolution applies to image folders; shards keep their size "
                             "(build them with `data build ... --resolution R`)")
        return ShardImages(path)
    return FolderImages(path, channels, resolution)


# ------------------------------------------------------------------ the encoding job

@dataclass
class EncodeJob:
    """What to encode and how (the command's options)."""

    out: str
    shard_size: int = 10_000
    batch_size: int = 64
    hflip: bool = False
    normalization: str = "scalar"  # scalar | channel | none
    scale: float | None = None  # scalar: None computes 1 / std over the dataset
    shift: float = 0.0  # scalar: subtracted before scaling (the shift_factor of some diffusers VAEs)
    rank: int = 0
    world_size: int = 1
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self):
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError(f"data encode: --shard-size and --batch-size must be >= 1, got {self.shard_size}, "
                             f"{self.batch_size}")
        if self.normalization not in ("scalar", "channel", "none"):
            raise ValueError(f"data encode: --normalization must be scalar, channel or none, got {self.normalization!r}")
        if self.scale is not None and (self.normalization != "scalar" or self.scale <= 0):
            raise ValueError("data encode: --scale needs --normalization scalar and a positive value")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"data encode: rank {self.rank} outside world size {self.world_size}")


def _shard_name(i: int) -> str:
    return f"{PREFIX}-{i:06d}.tar"


def _record_path(folder: Path, i: int) -> Path:
    return folder / f".{PREFIX}-{i:06d}.json"


def _check_plan(folder: Path, plan: dict) -> None:
    """The folder's encode.json must describe this job (same source, autoencoder, shard size, flips)."""
    path = folder / PLAN_JSON
    if path.is_file():
        old = json.loads(path.read_text())
        if old != plan:
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise BuildError(f"data encode: {folder} holds shards encoded differently ({', '.join(diff)} differ); "
                             f"give another --out, or --overwrite to start again")
    else:
        with writing(path):
            write_json_atomic(plan, path)


def _encode_batch(encoder: Encoder, images: list[torch.Tensor], device: str, hflip: bool):
    x = torch.stack(images).to(device=device, dtype=torch.float32).div_(127.5).sub_(1.0)
    with torch.no_grad():
        out = [encoder(x)] + ([encoder(x.flip(-1))] if hflip else [])
    return [tuple(t.float().cpu().numpy() for t in pair) for pair in out]


def _write_shard(folder: Path, i: int, samples: list[dict[str, bytes]], keys: list[str], stats: dict) -> None:
    name = _shard_name(i)
    shard = TempFile(folder / name)
    try:
        for key, members in zip(keys, samples):
            shard.write(b"".join(tar_record(f"{key}.{ext}", data) for ext, data in members.items()))
        shard.write(END_OF_ARCHIVE)
        shard.commit()
    except BaseException:  # a full disk, Ctrl-C: no torn .tmp stays
        shard.discard()
        raise
    entry = {"name": name, "count": len(samples), "bytes": shard.size, "sha256": shard.digest.hexdigest()}
    with writing(_record_path(folder, i)):
        write_json_atomic({"entry": entry, **{k: v.tolist() for k, v in stats.items()}}, _record_path(folder, i))


def encode_shard(images, encoder: Encoder, job: EncodeJob, folder: Path, i: int, bar: Progress) -> None:
    start, stop = i * job.shard_size, min((i + 1) * job.shard_size, images.num_samples)
    samples, keys, pending = [], [], []
    stats = {"sum": 0.0, "sumsq": 0.0, "varsum": 0.0, "count": 0}

    def flush():
        encoded = _encode_batch(encoder, [x for x, _ in pending], job.device, job.hflip)
        for j, (_, label) in enumerate(pending):
            members = {}
            for (mean, std), (m_key, s_key) in zip(encoded, ((MEAN, STD), (FLIP_MEAN, FLIP_STD))):
                members[m_key], members[s_key] = encode_npy(mean[j]), encode_npy(std[j])
                # per channel: sums of the mean, its square and the posterior variance (for the statistics of z)
                stats["sum"] = stats["sum"] + mean[j].astype(np.float64).sum(axis=(1, 2))
                stats["sumsq"] = stats["sumsq"] + np.square(mean[j].astype(np.float64)).sum(axis=(1, 2))
                stats["varsum"] = stats["varsum"] + np.square(std[j].astype(np.float64)).sum(axis=(1, 2))
                stats["count"] += mean[j].shape[1] * mean[j].shape[2]
            if label is not None:
                members["cls"] = str(int(label)).encode()
            samples.append(members)
            keys.append(f"{start + len(keys):08d}")
        bar.update(len(pending))
        pending.clear()

    for x, label in images.read(start, stop):
        pending.append((x, label))
        if len(pending) == job.batch_size:
            flush()
    if pending:
        flush()
    stats = {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()}
    _write_shard(folder, i, samples, keys, stats)


def normalization_record(job: EncodeJob, mean: np.ndarray, var: np.ndarray) -> dict:
    """From per-channel mean and variance of z = posterior mean + std * eps over the dataset."""
    if job.normalization == "none":
        return {"kind": "none"}
    if job.normalization == "channel":
        return {"kind": "channel", "mean": [round(float(m), 6) for m in mean],
                "std": [round(float(s), 6) for s in np.sqrt(np.maximum(var, 1e-12))]}
    if job.scale is not None:
        return {"kind": "scalar", "scale": float(job.scale), "shift": float(job.shift)}
    # one scale for all channels: 1 / std of every latent element (Rombach et al. 2022, App. G)
    overall_var = float(np.mean(var + mean**2) - np.mean(mean) ** 2)
    return {"kind": "scalar", "scale": round(1.0 / math.sqrt(max(overall_var, 1e-12)), 6), "shift": 0.0}


def finish(folder: Path, plan: dict, job: EncodeJob, images, command: list[str]) -> DatasetInfo | None:
    """Write dataset.json when every shard is done (None: some are still missing)."""
    n = plan["num_shards"]
    records = [_record_path(folder, i) for i in range(n)]
    if not all(r.is_file() and (folder / _shard_name(i)).is_file() for i, r in enumerate(records)):
        return None
    loaded = [json.loads(r.read_text()) for r in records]
    total = {k: sum(np.asarray(rec[k], dtype=np.float64) for rec in loaded) for k in ("sum", "sumsq", "varsum", "count")}
    mean = total["sum"] / total["count"]
    var_mean = np.maximum(total["sumsq"] / total["count"] - mean**2, 0.0)  # spread of posterior means
    var_z = var_mean + total["varsum"] / total["count"]  # law of total variance: + E[std^2]
    entries = [ShardEntry(**rec["entry"]) for rec in loaded]
    latent = LatentSpace(AutoencoderRecord.from_dict(plan["autoencoder"]), normalization_record(job, mean, var_z),
                         tuple(plan["image_shape"]), flips=job.hflip, stored="posterior mean and std")
    norm = latent.normalizer
    members = [MEAN, STD] + ([FLIP_MEAN, FLIP_STD] if job.hflip else []) + (["cls"] if images.class_names else [])
    info = DatasetInfo(
        num_samples=plan["num_samples"], shape=plan["latent_shape"], channels=plan["latent_shape"][0],
        num_classes=len(images.class_names), class_names=list(images.class_names),
        mean=[round(float(m), 6) for m in mean], std=[round(float(s), 6) for s in np.sqrt(var_mean)],
        fingerprint=hashlib.sha256("".join(e.sha256 for e in entries).encode()).hexdigest(), format="npy",
        shards=entries, kind="tensor", members=members,
        build={**plan["source"], "command": command, "version": __version__, LATENT_KEY: latent.to_dict()},
        latent_scale=norm.scale if norm.kind == "scalar" else None,
        latent_shift=norm.shift if norm.kind == "scalar" else None)
    with writing(folder / DATASET_JSON):
        write_dataset_json(info, folder)
    return info


def encode_dataset(images, encoder: Encoder, autoencoder: AutoencoderRecord, latent_shape: list[int], job: EncodeJob,
                   command: list[str], overwrite: bool = False) -> DatasetInfo | None:
    """Encode this rank's shards of `images` into job.out; dataset.json once all shards exist (else None)."""
    folder = Path(job.out)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    if overwrite and job.rank == 0:
        remove_stale(folder)
        for path in [*folder.glob(f"{PREFIX}-*.tar"), *folder.glob(f".{PREFIX}-*.json"), folder / PLAN_JSON,
                     folder / DATASET_JSON]:
            with writing(path):
                path.unlink(missing_ok=True)
    n = math.ceil(images.num_samples / job.shard_size)
    plan = {"source": images.describe, "autoencoder": autoencoder.to_dict(), "image_shape": images.image_shape,
            "latent_shape": list(latent_shape), "num_samples": images.num_samples, "shard_size": job.shard_size,
            "num_shards": n, "hflip": job.hflip, "normalization": job.normalization, "scale": job.scale}
    if (folder / DATASET_JSON).is_file() and not (folder / PLAN_JSON).is_file():
        raise BuildError(f"data encode: {folder} already holds a dataset not written by `data encode`; give "
                         f"another --out")
    _check_plan(folder, plan)
    mine = [i for i in range(job.rank, n, job.world_size)
            if not (_record_path(folder, i).is_file() and (folder / _shard_name(i)).is_file())]
    todo = sum(min((i + 1) * job.shard_size, images.num_samples) - i * job.shard_size for i in mine)
    try:
        with Progress(todo, f"encode rank {job.rank}/{job.world_size} -> {folder}", enabled=job.progress) as bar:
            for i in mine:
                encode_shard(images, encoder, job, folder, i, bar)
        return finish(folder, plan, job, images, command)
    except KeyboardInterrupt as stop:  # finished shards are complete files; the one being written is gone
        done = sum(_record_path(folder, i).is_file() and (folder / _shard_name(i)).is_file() for i in range(n))
        raise Interrupted.of(stop, f"{done} of {n} shard(s) are done and kept in {folder}; run the same command "
                                   f"again to encode the rest") from None
