"""`data build` as a service: turn a source (digits, MNIST, CIFAR, an image folder, arrays, tensor pairs) into
WebDataset shards and a dataset.json, recording the command line that made them.

Each source is a typed function (`SOURCES`); `lit-diffusion data build SOURCE` parses its signature and docstring
(the command's --help), and a compare suite's `build:` list names the same functions, so both build the same way.
"""
from __future__ import annotations

import inspect
import os
import re
from typing import Any, Callable, Literal, Optional, Union

Split = Literal["train", "test"]


def command_line(words: list[str], arguments: dict[str, Any], *functions: Callable) -> list[str]:
    """`words` plus `--name value` for each argument that differs from its default in `functions`: a record
    in the output of how it was made (e.g. dataset.json's build command)."""
    defaults = {n: p.default for f in functions for n, p in inspect.signature(f).parameters.items()}
    line = list(words)
    for name, value in arguments.items():
        if name in defaults and value != defaults[name]:
            line += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return line


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


SOURCES: dict[str, Callable[..., int]] = {"imagefolder": imagefolder, "mnist": mnist, "cifar10": cifar10,
                                          "cifar100": cifar100, "npz": npz, "digits": digits, "pairs": pairs}


def write_pairs(noise, target, labels, num_classes: int, *, out: str, description: dict, command: list[str],
                overwrite: bool = False):
    """(noise, target) couplings (reflow) as pair shards in `out` (replacing a dataset there with `overwrite`,
    once the new one is complete), classes named 0..num_classes-1 when labelled; returns the DatasetInfo."""
    from lit_diffusion.data.sources import TensorPairSource
    from lit_diffusion.data.writer import BuildOptions, build_dataset, resolve_encode_options

    class_names = [str(c) for c in range(num_classes)] if labels is not None else []
    source = TensorPairSource(noise, target, labels, class_names, description)
    build = BuildOptions(out=out, workers=0, progress=False, overwrite=overwrite)
    return build_dataset(source, build, resolve_encode_options(source), command=command)["all"]
