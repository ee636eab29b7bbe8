"""`lit-diffusion data ...`: build shards from a source, show a dataset.json, verify shards.

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

import argparse
import json
import logging
import os
import re
import sys

from .errors import BuildError, DataError

SOURCES = {
    "imagefolder": "a folder of class sub-folders of png/jpg images (or a flat folder: unlabeled)",
    "mnist": "MNIST IDX files (.gz or not), as torchvision lays them out (ROOT/MNIST/raw)",
    "cifar10": "the CIFAR-10 python pickles: cifar-10-python.tar.gz or its extracted folder",
    "cifar100": "the CIFAR-100 python pickles: cifar-100-python.tar.gz or its extracted folder",
    "npz": "numpy arrays: uint8 images (N,H,W[,C]) -> png; other dtypes -> npy tensors (latents)",
    "digits": "scikit-learn's bundled 8x8 digits (1797 images, no download): the default dataset",
    "pairs": "tensor pairs (noise, target) from two .npy files or one .npz, e.g. reflow couplings",
}


def parse_size(text: str) -> int:
    """'500000', '64MB', '1.5GiB' -> bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]i?)?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 500000, 64MB, 1GiB)")
    unit = (m.group(2) or "").lower()
    base = 1024 if unit.endswith("i") else 1000
    power = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1]]
    return int(float(m.group(1)) * base**power)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder for shards and dataset.json")
    p.add_argument("--resolution", type=int, help="center-crop to a square and resize to RxR")
    p.add_argument("--resize-filter", default="lanczos",
                   choices=["nearest", "bilinear", "bicubic", "lanczos", "box"])
    p.add_argument("--image-format", default="auto", choices=["auto", "png", "jpg"],
                   help="auto: copy png/jpg source files unchanged when possible, else png")
    p.add_argument("--jpeg-quality", type=int, default=95, help="when re-encoding to jpg")
    p.add_argument("--mode", default="auto", choices=["auto", "L", "RGB"],
                   help="image mode; auto takes the first image's and rejects others; L/RGB converts all")
    p.add_argument("--shard-size", type=int, default=10_000, help="max samples per shard")
    p.add_argument("--shard-bytes", type=parse_size, help="max bytes per shard (e.g. 256MB, 1GiB)")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep the source order")
    p.add_argument("--seed", type=int, default=0, help="seed of the write-time shuffle and val split")
    p.add_argument("--workers", type=int, default=None,
                   help="encoder processes (default: min(8, CPUs), 0 for small sources)")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="hold out this fraction: writes OUT/train and OUT/val")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit-diffusion data", description="Build and inspect WebDataset shards.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="convert a dataset into shards + dataset.json")
    kinds = build.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, help_ in SOURCES.items():
        p = kinds.add_parser(name, help=help_, description=help_)
        if name in ("imagefolder", "mnist", "cifar10", "cifar100"):
            p.add_argument("root", help="source folder (or the downloaded archive for cifar)")
        if name in ("mnist", "cifar10", "cifar100"):
            p.add_argument("--split", default="train", choices=["train", "test"])
        if name == "npz":
            p.add_argument("path")
            p.add_argument("--images-key", help="array of images/tensors (default: images, x, data or arr_0)")
            p.add_argument("--labels-key", help="array of int labels (default: labels or y, if present)")
            p.add_argument("--layout", default="auto", choices=["auto", "NHWC", "NCHW", "tensor"],
                           help="uint8 image layout; 'tensor' stores uint8 arrays as npy")
        if name == "pairs":
            p.add_argument("noise", help="noise .npy, or an .npz with arrays 'noise' and 'target'")
            p.add_argument("target", nargs="?", help="target .npy (omit with an .npz)")
            p.add_argument("--labels", help=".npy of int labels")
        if name in ("npz", "pairs"):
            p.add_argument("--class-names", help="comma-separated class names")
        if name == "npz":
            p.add_argument("--latent-scale", type=float, help="tensors: reader returns (z - shift) * scale")
            p.add_argument("--latent-shift", type=float, help="tensors: see --latent-scale")
        _common(p)
    info = sub.add_parser("info", help="print a dataset.json summary")
    info.add_argument("path", help="dataset folder or dataset.json")
    info.add_argument("--json", action="store_true", help="print the whole dataset.json")
    verify = sub.add_parser("verify", help="read and decode every sample; check counts and checksums")
    verify.add_argument("path", help="dataset folder or dataset.json")
    return parser


def _source(args):
    from . import sources
    from .imagefolder import ImageFolderSource

    names = args.class_names.split(",") if getattr(args, "class_names", None) else None
    if args.source == "imagefolder":
        return ImageFolderSource(args.root)
    if args.source == "mnist":
        return sources.mnist_source(args.root, args.split)
    if args.source in ("cifar10", "cifar100"):
        return sources.cifar_source(args.root, args.split, args.source)
    if args.source == "npz":
        return sources.npz_source(args.path, args.images_key, args.labels_key, names, args.layout)
    if args.source == "digits":
        return sources.digits_source()
    return sources.pairs_source(args.noise, args.target, args.labels, names)


def build(args, argv: list[str]) -> int:
    from .writer import BuildOptions, build_dataset, resolve_encode_options

    source = _source(args)
    workers = args.workers
    if workers is None:
        workers = 0 if len(source) < 5000 else min(8, os.cpu_count() or 1)
    latent = None
    scale, shift = getattr(args, "latent_scale", None), getattr(args, "latent_shift", None)
    if scale is not None or shift is not None:
        latent = (1.0 if scale is None else scale, 0.0 if shift is None else shift)
    opts = resolve_encode_options(source, args.image_format, args.mode, resolution=args.resolution,
                                  resize_filter=args.resize_filter, jpeg_quality=args.jpeg_quality)
    build_opts = BuildOptions(out=args.out, shard_size=args.shard_size, shard_bytes=args.shard_bytes,
                              shuffle=args.shuffle, seed=args.seed, workers=workers,
                              val_fraction=args.val_fraction, overwrite=args.overwrite, progress=args.progress)
    infos = build_dataset(source, build_opts, opts, command=["lit-diffusion", "data", *argv], latent=latent)
    for split, info in infos.items():
        folder = args.out if split == "all" else os.path.join(args.out, split)
        print(f"{folder}: {info.num_samples} samples, shape {info.shape}, {info.num_classes} classes, "
              f"{len(info.shards)} shard(s), format {info.format}, fingerprint {info.fingerprint[:16]}")
    return 0


def show_info(args) -> int:
    from .dataset_json import read_dataset_json

    info = read_dataset_json(args.path)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    print(f"samples      {info.num_samples} in {len(info.shards)} shard(s) ({info.format}, kind {info.kind})")
    print(f"shape        {info.shape} (channels {info.channels})")
    print(f"classes      {info.num_classes}: {', '.join(info.class_names[:12])}"
          f"{' ...' if info.num_classes > 12 else ''}")
    print(f"mean / std   {info.mean} / {info.std}")
    print(f"fingerprint  {info.fingerprint}")
    if info.kind == "tensor":
        print(f"latent       scale {info.latent_scale}, shift {info.latent_shift}")
    print(f"built by     {' '.join(info.build.get('command') or ['(python API)'])}")
    return 0


def verify(args) -> int:
    from pathlib import Path

    from .dataset_json import file_sha256, read_dataset_json
    from .decode import SampleDecoder
    from .shardio import read_shard

    folder = Path(args.path)
    folder = folder if folder.is_dir() else folder.parent
    info = read_dataset_json(folder)
    decoder = SampleDecoder(info, labels=info.labeled)
    problems = 0
    for shard in info.shards:
        url = str(folder / shard.name)
        try:
            digest = file_sha256(url)
            if shard.sha256 and digest != shard.sha256:
                raise DataError(f"sha256 {digest[:16]}... differs from dataset.json", shard=url)
            for raw in read_shard(url, 0, shard.count, shard.count):
                decoder.check(raw)
                decoder.decode(raw)
        except (DataError, OSError) as e:
            problems += 1
            print(f"error: {e}", file=sys.stderr)
    print(f"{folder}: {len(info.shards)} shard(s), {info.num_samples} samples: "
          f"{'OK' if not problems else f'{problems} bad shard(s)'}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "build":
            return build(args, argv)
        if args.command == "info":
            return show_info(args)
        return verify(args)
    except (BuildError, DataError, ValueError, FileNotFoundError) as e:
        print(f"lit-diffusion data: error: {e}", file=sys.stderr)
        return 1
