"""`lit-diffusion data build SOURCE | info | verify`: build WebDataset shards from a source, show a
dataset.json, verify shards.

    lit-diffusion data build digits --out data/digits
    lit-diffusion data build mnist ~/datasets/mnist --split train --out data/mnist/train --workers 2
    lit-diffusion data build imagefolder ~/cifar10/train --out data/cifar10/train --workers 2
    lit-diffusion data build cifar10 ~/cifar-10-python.tar.gz --split test --out data/cifar10/test
    lit-diffusion data build npz latents.npz --latent-scale 0.18215 --out data/latents
    lit-diffusion data build pairs noise.npy target.npy --out data/reflow
    lit-diffusion data info data/digits
    lit-diffusion data verify data/digits
"""
from __future__ import annotations

import json as json_format
import os
import re
import sys
from typing import Literal, Optional, Union

from lit_diffusion.commands.parsing import command_line, run

Split = Literal["train", "test"]


def parse_size(text: Union[int, str]) -> int:
    """'500000', '64MB', '1.5GiB' -> bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]i?)?[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"--shard-bytes: not a size: {text!r} (examples: 500000, 64MB, 1GiB)")
    unit = (m.group(2) or "").lower()
    base = 1024 if unit.endswith("i") else 1000
    power = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1]]
    return int(float(m.group(1)) * base**power)


def write_shards(source, words: list[str], *, out: str, resolution: Optional[int] = None,
                 resize_filter: Literal["nearest", "bilinear", "bicubic", "lanczos", "box"] = "lanczos",
                 image_format: Literal["auto", "png", "jpg"] = "auto", jpeg_quality: int = 95,
                 mode: Literal["auto", "L", "RGB"] = "auto", shard_size: int = 10_000,
                 shard_bytes: Union[int, str, None] = None, shuffle: bool = True, seed: int = 0,
                 workers: Optional[int] = None, val_fraction: float = 0.0, overwrite: bool = False,
                 progress: bool = True, _latent: Optional[tuple[float, float]] = None) -> int:
    """Write `source` as shards and a dataset.json in `out`.

    Args:
        out: output folder for shards and dataset.json.
        resolution: center-crop to a square and resize to RxR.
        resize_filter: the resampling filter of --resolution.
        image_format: auto: copy png/jpg source files unchanged when possible, else png.
        jpeg_quality: when re-encoding to jpg.
        mode: image mode; auto takes the first image's and rejects others; L/RGB converts all.
        shard_size: max samples per shard.
        shard_bytes: max bytes per shard (e.g. 256MB, 1GiB).
        shuffle: shuffle at write time (--no-shuffle keeps the source order).
        seed: seed of the write-time shuffle and of the validation split.
        workers: encoder processes (default: min(8, CPUs), 0 for small sources).
        val_fraction: hold out this fraction: writes OUT/train and OUT/val.
        overwrite: replace a dataset already in OUT.
        progress: a progress bar on stderr (--no-progress: none).
    """
    from lit_diffusion.data.writer import BuildOptions, build_dataset, resolve_encode_options

    if workers is None:
        workers = 0 if len(source) < 5000 else min(8, os.cpu_count() or 1)
    opts = resolve_encode_options(source, image_format, mode, resolution=resolution,
                                  resize_filter=resize_filter, jpeg_quality=jpeg_quality)
    build = BuildOptions(out=out, shard_size=shard_size, shuffle=shuffle, seed=seed, workers=workers,
                         shard_bytes=None if shard_bytes is None else parse_size(shard_bytes),
                         val_fraction=val_fraction, overwrite=overwrite, progress=progress)
    infos = build_dataset(source, build, opts, command=words, latent=_latent)
    for split, info in infos.items():
        folder = out if split == "all" else os.path.join(out, split)
        print(f"{folder}: {info.num_samples} samples, shape {info.shape}, {info.num_classes} classes, "
              f"{len(info.shards)} shard(s), format {info.format}, fingerprint {info.fingerprint[:16]}")
    return 0


def _record(source: str, positional: list, options: dict, *functions) -> list[str]:
    """The command line recorded in dataset.json (what `data info` prints as 'built by')."""
    words = ["lit-diffusion", "data", "build", source, *map(str, positional)]
    return command_line(words, options, write_shards, *functions)


def _names(class_names: Union[list[str], str, None]) -> Optional[list[str]]:
    return class_names.split(",") if isinstance(class_names, str) else class_names


def digits(**options) -> int:
    """scikit-learn's bundled 8x8 digits (1797 images, no download): the default dataset."""
    from lit_diffusion.data.sources import digits_source

    return write_shards(digits_source(), _record("digits", [], options), **options)


def mnist(root: str, split: Split = "train", **options) -> int:
    """MNIST IDX files (.gz or not), as torchvision lays them out (ROOT/MNIST/raw).

    Args:
        root: the folder holding the IDX files.
        split: which split to convert.
    """
    from lit_diffusion.data.sources import mnist_source

    return write_shards(mnist_source(root, split), _record("mnist", [root, "--split", split], options), **options)


def imagefolder(root: str, *, skip_bad: bool = False, **options) -> int:
    """A folder of class sub-folders of png/jpg images (or a flat folder: unlabeled).

    Args:
        root: the source folder.
        skip_bad: leave out images that cannot be decoded (each named in a warning) instead of stopping.
    """
    from lit_diffusion.data.imagefolder import ImageFolderSource

    words = _record("imagefolder", [root], dict(skip_bad=skip_bad, **options), imagefolder)
    return write_shards(ImageFolderSource(root, skip_bad=skip_bad), words, **options)


def cifar10(root: str, split: Split = "train", **options) -> int:
    """The CIFAR-10 python pickles: cifar-10-python.tar.gz or its extracted folder.

    Args:
        root: the downloaded archive or its extracted folder.
        split: which split to convert.
    """
    from lit_diffusion.data.sources import cifar_source

    words = _record("cifar10", [root, "--split", split], options)
    return write_shards(cifar_source(root, split, "cifar10"), words, **options)


def cifar100(root: str, split: Split = "train", **options) -> int:
    """The CIFAR-100 python pickles: cifar-100-python.tar.gz or its extracted folder.

    Args:
        root: the downloaded archive or its extracted folder.
        split: which split to convert.
    """
    from lit_diffusion.data.sources import cifar_source

    words = _record("cifar100", [root, "--split", split], options)
    return write_shards(cifar_source(root, split, "cifar100"), words, **options)


def npz(path: str, *, images_key: Optional[str] = None, labels_key: Optional[str] = None,
        layout: Literal["auto", "NHWC", "NCHW", "tensor"] = "auto", class_names: Union[list[str], str, None] = None,
        latent_scale: Optional[float] = None, latent_shift: Optional[float] = None, **options) -> int:
    """Numpy arrays: uint8 images (N,H,W[,C]) -> png; other dtypes -> npy tensors (latents).

    Args:
        path: the .npz file.
        images_key: array of images/tensors (default: images, x, data or arr_0).
        labels_key: array of int labels (default: labels or y, if present).
        layout: uint8 image layout; 'tensor' stores uint8 arrays as npy.
        class_names: class names, comma-separated or a list.
        latent_scale: tensors: the reader returns (z - shift) * scale.
        latent_shift: tensors: see --latent-scale.
    """
    from lit_diffusion.data.sources import npz_source

    latent = None
    if latent_scale is not None or latent_shift is not None:
        latent = (1.0 if latent_scale is None else latent_scale, 0.0 if latent_shift is None else latent_shift)
    own = dict(images_key=images_key, labels_key=labels_key, layout=layout, class_names=class_names,
               latent_scale=latent_scale, latent_shift=latent_shift)
    words = _record("npz", [path], {**own, **options}, npz)
    source = npz_source(path, images_key, labels_key, _names(class_names), layout)
    return write_shards(source, words, _latent=latent, **options)


def pairs(noise: str, target: Optional[str] = None, *, labels: Optional[str] = None,
          class_names: Union[list[str], str, None] = None, **options) -> int:
    """Tensor pairs (noise, target) from two .npy files or one .npz, e.g. reflow couplings.

    Args:
        noise: noise .npy, or an .npz with arrays 'noise' and 'target'.
        target: target .npy (omit with an .npz); may be given positionally after NOISE.
        labels: .npy of int labels.
        class_names: class names, comma-separated or a list.
    """
    from lit_diffusion.data.sources import pairs_source

    words = _record("pairs", [noise] + ([target] if target else []), dict(labels=labels, class_names=class_names,
                                                                          **options), pairs)
    return write_shards(pairs_source(noise, target, labels, _names(class_names)), words, **options)


def _dataset(path: str, image_key, label_key, num_classes, resolution):
    """(ShardSet, inferred?) of a folder, dataset.json or shard URLs, with or without a dataset.json."""
    from lit_diffusion.data.infer import InferOptions
    from lit_diffusion.data.urls import resolve_shards

    infer = InferOptions(image_key, label_key, num_classes, resolution)
    shards = resolve_shards(path, check_exists=False, infer=infer)
    return shards, "inferred" in shards.info.build


def info(path: str, *, json: bool = False, image_key: Optional[str] = None, label_key: Optional[str] = None,
         num_classes: Optional[int] = None, resolution: Optional[int] = None) -> int:
    """Print a dataset.json summary (for shards without one: what is inferred from them).

    Args:
        path: dataset folder, dataset.json, or shard URLs (a brace pattern).
        json: print the whole dataset.json.
        image_key: shards without dataset.json: the image member (jpg, jpeg, png, webp, npy).
        label_key: shards without dataset.json: cls, json:FIELD or none.
        num_classes: shards without dataset.json: the number of classes (default: largest label + 1).
        resolution: shards without dataset.json: the size every image is resized to when read.
    """
    shards, inferred = _dataset(path, image_key, label_key, num_classes, resolution)
    dataset = shards.info
    if json:
        print(json_format.dumps(dataset.to_dict(), indent=2))
        return 0
    print(f"samples      {dataset.num_samples} in {len(dataset.shards)} shard(s) ({dataset.format}, kind {dataset.kind})")
    print(f"shape        {dataset.shape} (channels {dataset.channels})")
    print(f"classes      {dataset.num_classes}: {', '.join(dataset.class_names[:12])}"
          f"{' ...' if dataset.num_classes > 12 else ''}")
    if inferred:
        how = dataset.build["inferred"]
        print(f"inferred     no dataset.json: image member {how['image']!r}, label {how['label'] or 'none'}, "
              f"resolution {how['resolution'] or 'of the first image'}; statistics not computed")
        print(f"fingerprint  {dataset.fingerprint} (of shard names, counts and sizes)")
        return 0
    print(f"mean / std   {dataset.mean} / {dataset.std}")
    print(f"fingerprint  {dataset.fingerprint}")
    if dataset.kind == "tensor":
        print(f"latent       scale {dataset.latent_scale}, shift {dataset.latent_shift}")
    print(f"built by     {' '.join(dataset.build.get('command') or ['(python API)'])}")
    return 0


def _verify_shard(url: str, entry, decoder, progress) -> None:
    from lit_diffusion.data.dataset_json import file_sha256
    from lit_diffusion.data.errors import DataError
    from lit_diffusion.data.shardio import local_path, read_shard

    path = local_path(url)
    if entry.sha256 and path is not None:
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise DataError(f"sha256 {digest[:16]}... differs from dataset.json", shard=url)
    for raw in read_shard(url, 0, entry.count, entry.count):
        decoder.check(raw)
        decoder.decode(raw)
        progress.update(1)


def verify(path: str, *, image_key: Optional[str] = None, label_key: Optional[str] = None,
           num_classes: Optional[int] = None, resolution: Optional[int] = None, progress: bool = True) -> int:
    """Read and decode every sample; check counts and checksums (shards without dataset.json: decode and
    counts, as inferred).

    Args:
        path: dataset folder, dataset.json, or shard URLs (a brace pattern).
        image_key: shards without dataset.json: the image member (jpg, jpeg, png, webp, npy).
        label_key: shards without dataset.json: cls, json:FIELD or none.
        num_classes: shards without dataset.json: the number of classes (default: largest label + 1).
        resolution: shards without dataset.json: resize every image to R x R when decoding.
        progress: progress on stderr (a bar on a terminal, a line every 10 s otherwise).
    """
    from lit_diffusion.data.progress import Progress
    from lit_diffusion.data.decode import SampleDecoder
    from lit_diffusion.data.errors import DataError

    shards, _ = _dataset(path, image_key, label_key, num_classes, resolution)
    dataset = shards.info
    decoder = SampleDecoder(dataset, labels=dataset.labeled)
    problems = 0
    with Progress(dataset.num_samples, "verify", enabled=progress) as bar:
        for url, entry in zip(shards.urls, dataset.shards):
            try:
                _verify_shard(url, entry, decoder, bar)
            except (DataError, OSError) as e:
                problems += 1
                print(f"error: {e}", file=sys.stderr)
    where = os.path.dirname(shards.json_location)
    print(f"{where}: {len(dataset.shards)} shard(s), {dataset.num_samples} samples: "
          f"{'OK' if not problems else f'{problems} bad shard(s)'}")
    return 1 if problems else 0


COMMANDS = {
    "build": {"_help": "convert a dataset into shards + dataset.json (SOURCE: one of the commands below)",
              "imagefolder": imagefolder, "mnist": mnist, "cifar10": cifar10, "cifar100": cifar100, "npz": npz,
              "digits": digits, "pairs": pairs},
    "info": info,
    "verify": verify,
}


def main(argv: list[str]) -> int:
    import logging

    from lit_diffusion.data.errors import BuildError, DataError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(COMMANDS, argv, "lit-diffusion data", errors=(BuildError, DataError, ValueError, FileNotFoundError))
