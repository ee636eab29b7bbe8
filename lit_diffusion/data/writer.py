"""Writer: convert a :class:`~lit_diffusion.data.sources.Source` into WebDataset tar shards.

Samples are (optionally) shuffled with a seed, encoded in worker processes, and written in
order into ``shard-000000.tar, shard-000001.tar, ...``; a shard closes when it reaches
``shard_size`` samples or would exceed ``shard_bytes``. The whole dataset is written into a staging
folder and moved into place when complete (``writes.Staging``), so a failed or interrupted build,
``--overwrite`` included, leaves the folder as it was. The tar members
carry fixed metadata (mtime 0, uid 0), so the same source and options give byte-identical shards.
Samples are encoded into tar records in the workers; the main process only appends bytes.
"""
from __future__ import annotations

import errno
import hashlib
import io
import logging
import multiprocessing
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .dataset_json import DATASET_JSON, DatasetInfo, write_dataset_json
from .encode import EncodeOptions, Encoded, encode_item
from lit_diffusion.stop_signals import Interrupted

from .errors import BuildError, WriteError
from .sources import Source
from .shard_sink import END_OF_ARCHIVE, ShardSink  # noqa: F401 (END_OF_ARCHIVE: read from here too)
from .writes import Staging, deferred_signals, holds_dataset, remove_stale, writing

log = logging.getLogger("lit_diffusion.data")

CHUNK = 128  # samples per task sent to a worker process


@dataclass
class BuildOptions:
    """How to write the shards (the encoding itself is :class:`EncodeOptions`)."""

    out: str
    shard_size: int = 10_000  # at most this many samples per shard
    shard_bytes: int | None = None  # at most this many bytes per shard file (None: no limit)
    shuffle: bool = True  # shuffle the sample order at write time
    seed: int = 0  # seed of the write-time shuffle and of the validation split
    workers: int = 0  # encoder processes; 0 encodes in this process
    val_fraction: float = 0.0  # > 0: write out/train and out/val, a seeded random split
    overwrite: bool = False  # replace an existing dataset in out
    progress: bool = True  # progress bar on stderr
    prefix: str = "shard"

    def __post_init__(self):
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.shard_bytes is not None and self.shard_bytes < 4096:
            raise ValueError(f"shard_bytes must be at least 4096, got {self.shard_bytes}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


# ------------------------------------------------------------------ worker processes

_WORKER: dict = {}


def _init_worker(source: Source, opts: EncodeOptions, in_pool: bool = False) -> None:
    _WORKER["source"], _WORKER["opts"] = source, opts
    if in_pool:  # the main process handles Ctrl-C and SIGTERM and ends the pool; a worker just goes
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch = sys.modules.get("torch")
    if in_pool and torch is not None:  # one intra-op thread per encoder process, as DataLoader workers do
        torch.set_num_threads(1)


def _encode_chunk(indices: list[int]) -> list[Encoded]:
    source, opts = _WORKER["source"], _WORKER["opts"]
    return [encode_item(f"{i:08d}", source.item(i), opts) for i in indices]


def resolve_encode_options(source: Source, image_format: str = "auto", mode: str = "auto",
                           **kwargs) -> EncodeOptions:
    """Fix "auto" choices from the source: format (copy when possible) and mode (first image)."""
    if source.kind != "image":
        return EncodeOptions(**kwargs)
    if image_format == "auto":
        image_format = source.native_format or "png"
    convert = mode != "auto"
    if not convert:
        first = source.item(0)
        if first.image is not None:
            mode = "L" if first.image.ndim == 2 else "RGB"
        else:
            from PIL import Image

            try:
                mode = Image.open(io.BytesIO(first.image_bytes)).mode
            except Exception as e:
                raise BuildError(f"{first.origin}: cannot read image: {e}") from None
        if mode not in ("L", "RGB"):
            raise BuildError(f"{first.origin}: first image has mode {mode!r}; pass --mode L or --mode RGB "
                             f"to convert every image")
    return EncodeOptions(image_format=image_format, mode=mode, convert_mode=convert, **kwargs)


def _encoded_stream(source: Source, order: np.ndarray, opts: EncodeOptions, workers: int):
    chunks = [order[i:i + CHUNK].tolist() for i in range(0, len(order), CHUNK)]
    if workers == 0:
        _init_worker(source, opts)
        for chunk in chunks:
            yield from _encode_chunk(chunk)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(source, opts, True)) as pool:
        for encoded in pool.imap(_encode_chunk, chunks):
            yield from encoded


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or not there
        pass


def _saying_what_is_kept(error: BaseException, out: Path, replacing: bool) -> BaseException:
    """A stop or a failed write of a build that replaced nothing, saying so (other errors as they are)."""
    kept = f"the dataset in {out} is as it was" if replacing else f"nothing was written to {out}"
    if isinstance(error, KeyboardInterrupt):
        return Interrupted.of(error, f"{kept}; run the same command again to build it")
    if isinstance(error, WriteError) and replacing:
        both = "; the old dataset stays until the new one is complete, so both must fit" \
            if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        return WriteError(f"{error} ({kept}{both})", error.path, error.errno)
    return error


def refuse_existing(folder: Path, overwrite: bool, prefix: str = "shard") -> None:
    """A folder that holds a dataset is replaced only when the user says so (--overwrite)."""
    if not overwrite and holds_dataset(folder, prefix):
        raise BuildError(f"{folder} already holds a dataset ({DATASET_JSON} or {prefix}-*.tar); pass --overwrite "
                         f"to replace it (the old one stays until the new one is complete), or choose another --out")


def _write_split(source: Source, order: np.ndarray, folder: Path, staging: Path, build: BuildOptions,
                 opts: EncodeOptions, build_info: dict, latent: tuple[float, float] | None) -> DatasetInfo:
    """The shards and dataset.json of one split, written into `staging` (errors name their place in `folder`)."""
    sink = ShardSink(staging, build.prefix, build.shard_size, build.shard_bytes, shown=folder)
    shape = None
    sums = sumsq = None
    count = 0
    digests: list[bytes] = []
    members: list[str] | None = None
    from .progress import Progress

    bar = Progress(len(order), f"writing {folder}", enabled=build.progress)
    try:
        for enc in _encoded_stream(source, order, opts, build.workers):
            if shape is None:
                shape, members = enc.shape, list(enc.members)
                sums, sumsq = np.zeros_like(enc.sums), np.zeros_like(enc.sumsq)
            elif enc.shape != shape:
                raise BuildError(f"{enc.origin}: shape {list(enc.shape)} differs from {list(shape)} of the "
                                 f"first sample; pass --resolution to center-crop and resize all images")
            elif list(enc.members) != members:
                raise BuildError(f"{enc.origin}: members {list(enc.members)} differ from {members}")
            sink.add(enc.blob, enc.origin)
            sums += enc.sums
            sumsq += enc.sumsq
            count += enc.count
            digests.append(enc.digest)
            bar.update(1)
        entries = sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        bar.close()
    mean = sums / count
    std = np.sqrt(np.maximum(sumsq / count - mean * mean, 0.0))
    fingerprint = hashlib.sha256(b"".join(sorted(digests))).hexdigest()
    kind = source.kind
    info = DatasetInfo(
        num_samples=len(order), shape=list(shape), channels=shape[0] if len(shape) == 3 else 1,
        num_classes=len(source.class_names), class_names=list(source.class_names),
        mean=[round(float(m), 6) for m in mean], std=[round(float(s), 6) for s in std],
        fingerprint=fingerprint, format=opts.image_format if kind == "image" else "npy",
        shards=entries, build=build_info, kind=kind, members=members,
        latent_scale=latent[0] if latent else None, latent_shift=latent[1] if latent else None,
    )
    with writing(folder / DATASET_JSON):
        write_dataset_json(info, staging)
    return info


def _splits(n: int, build: BuildOptions) -> dict[str, np.ndarray]:
    """{"all": indices} or a seeded random {"val": ..., "train": ...} split of n samples."""
    if build.val_fraction <= 0:
        return {"all": np.arange(n)}
    n_val = int(round(n * build.val_fraction))
    if not 1 <= n_val < n:
        raise BuildError(f"val_fraction={build.val_fraction} of {n} samples gives {n_val} validation samples")
    perm = np.random.default_rng(np.random.SeedSequence([build.seed, 0x5EED])).permutation(n)
    return {"val": np.sort(perm[:n_val]), "train": np.sort(perm[n_val:])}


def build_dataset(source: Source, build: BuildOptions, opts: EncodeOptions,
                  command: list[str] | None = None,
                  latent: tuple[float, float] | None = None) -> dict[str, DatasetInfo]:
    """Write ``source`` as shards; returns {"all": info} or {"train": info, "val": info}.

    ``latent`` is (latent_scale, latent_shift) recorded for tensor datasets (default (1, 0)).
    """
    n = len(source)
    if n == 0:
        raise BuildError(f"{source.name}: the source holds no samples")
    if source.kind == "tensor" and latent is None:
        latent = (1.0, 0.0)
    if source.kind != "tensor" and latent is not None:
        raise BuildError("latent scale/shift apply to tensor (npy) datasets only")
    out = Path(build.out)
    splits = _splits(n, build)
    folders = {split: out if split == "all" else out / split for split in splits}
    for folder in folders.values():  # every split is checked before any is written
        refuse_existing(folder, build.overwrite, build.prefix)
    replacing = any(holds_dataset(folder, build.prefix) for folder in folders.values())
    created = not out.exists()
    infos, stagings = {}, []
    try:
        for split_id, (split, indices) in enumerate(splits.items()):
            order = indices
            if build.shuffle:
                split_rng = np.random.default_rng(np.random.SeedSequence([build.seed, split_id]))
                order = split_rng.permutation(indices)
            build_info = {
                "lit_diffusion_version": __version__,
                "command": command,
                "source": source.describe(),
                "split": None if split == "all" else split,
                "options": {k: v for k, v in asdict(build).items() if k not in ("progress", "out", "overwrite")},
                "encode": asdict(opts) if source.kind == "image" else None,
            }
            stagings.append(Staging(folders[split]))
            remove_stale(folders[split])
            infos[split] = _write_split(source, order, folders[split], stagings[-1].path, build, opts, build_info,
                                        latent)
    except BaseException as e:
        for staging in stagings:
            staging.discard()
        if created:  # leave no empty folders behind either
            for folder in [*folders.values(), out]:
                _remove_empty(folder)
        reported = _saying_what_is_kept(e, out, replacing)
        if reported is e:
            raise
        raise reported from (None if isinstance(e, KeyboardInterrupt) else e)
    try:
        with deferred_signals():  # only now, with every split complete, is anything replaced: all splits at once
            for staging in stagings:
                staging.commit(build.prefix)
    except KeyboardInterrupt as e:  # held back until the swap was done
        raise Interrupted.of(e, f"the new dataset in {out} is complete") from None
    for split, info in infos.items():
        log.info("wrote %d samples in %d shards to %s", info.num_samples, len(info.shards), folders[split])
    return infos
