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
    lit-diffusion data encode data/mnist/train --autoencoder runs/mnist-autoencoder/checkpoints/last.ckpt --out data/mnist-latents
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
    from lit_diffusion.data.latent_space import LatentSpace

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
    latent = LatentSpace.of_dataset(dataset)
    if latent:
        ae = latent.autoencoder
        print(f"autoencoder  {ae.kind} {ae.location} (weights sha256 {ae.weights_sha256[:16]}), images "
              f"{list(latent.image_shape)}, flips {'encoded' if latent.flips else 'no'}")
        print(f"latent       posterior mean + std per sample, normalisation {latent.normalization}")
    elif dataset.kind == "tensor":
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


def _rank_world() -> tuple[int, int]:
    """(rank, world size) of this process under torchrun (RANK/WORLD_SIZE) or srun (SLURM_PROCID/SLURM_NTASKS)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"])
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
    return 0, 1


def encode(source: str, *, autoencoder: str, out: str, subfolder: Optional[str] = None,
           normalization: Literal["scalar", "channel", "none"] = "scalar", scale: Optional[float] = None,
           hflip: bool = False, resolution: Optional[int] = None, shard_size: int = 10_000, batch_size: int = 64,
           device: Optional[str] = None, overwrite: bool = False, progress: bool = True) -> int:
    """Encode images (shards or an image folder) into latent shards with an autoencoder.

    Each sample stores the posterior mean and std, so that training draws a fresh latent each epoch. Resumable
    (finished shards are kept); under torchrun / srun each rank encodes its share of the shards (on its GPU when
    there is one), and the last to finish writes dataset.json.

    Args:
        source: image shards (a folder with dataset.json, or shard URLs) or an image folder.
        autoencoder: a checkpoint of the framework's autoencoder (RUN/checkpoints/last.ckpt of `lit-diffusion fit
            -c experiments/autoencoder/...`), a diffusers AutoencoderKL folder (save_pretrained), or a hub id such
            as stabilityai/sd-vae-ft-ema (needs network and `pip install diffusers`).
        out: output folder for the latent shards and dataset.json.
        subfolder: diffusers: the subfolder of the model holding the VAE (e.g. vae for a whole pipeline).
        normalization: scalar: x = z * scale (one number); channel: x = (z - mean_c) / std_c over the dataset
            (EDM2, LightningDiT); none: x = z.
        scale: scalar normalisation with this scale (0.18215 for SD-VAE); default: a diffusers VAE's own
            scaling_factor (and shift_factor), the framework's autoencoder 1 / std over the dataset.
        hflip: also encode each image's mirror as its own latent (training with --data.hflip true picks one).
        resolution: image folders: center-crop and resize to R x R.
        shard_size: samples per output shard (also the unit of resuming and of the split over ranks).
        batch_size: images per autoencoder forward pass.
        device: torch device (default: this rank's GPU when there is one, else cpu).
        overwrite: delete what OUT holds and encode everything again.
        progress: a progress bar on stderr (--no-progress: none).
    """
    import torch

    from lit_diffusion.data.latent_encode import EncodeJob, encode_dataset, open_images
    from lit_diffusion.data.latent_space import LatentSpace
    from lit_diffusion.generation.latents import open_autoencoder

    rank, world = _rank_world()
    if device is None:
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    model, record = open_autoencoder(autoencoder, subfolder)
    shift = 0.0
    if record.kind == "diffusers" and normalization == "scalar" and scale is None:
        # the VAE's own constants (SD-VAE 0.18215, SDXL 0.13025; SD3/FLUX also a shift), as diffusers pipelines use
        scale = float(model.vae.config.scaling_factor)
        shift = float(getattr(model.vae.config, "shift_factor", None) or 0.0)
    job = EncodeJob(out=out, shard_size=shard_size, batch_size=batch_size, hflip=hflip, normalization=normalization,
                    scale=scale, shift=shift, rank=rank, world_size=world, progress=progress, device=device)
    model = model.to(device).eval()
    images = open_images(source, record.in_channels, resolution)
    latent_shape = model.latent_shape(images.image_shape)
    words = command_line(["lit-diffusion", "data", "encode", source],
                         dict(autoencoder=autoencoder, out=out, subfolder=subfolder, normalization=normalization,
                              scale=scale, hflip=hflip, resolution=resolution, shard_size=shard_size,
                              batch_size=batch_size), encode)
    info = encode_dataset(images, model.encode, record, latent_shape, job, words, overwrite=overwrite and rank == 0)
    if info is None:
        print(f"rank {rank}/{world}: my shards are done in {out}; dataset.json is written by the rank that "
              f"finishes last (or by running the same command again once all are done)")
        return 0
    norm = LatentSpace.of_dataset(info).normalization
    print(f"{out}: {info.num_samples} latents of shape {info.shape} ({record.kind} autoencoder, normalisation "
          f"{norm}), {len(info.shards)} shard(s), fingerprint {info.fingerprint[:16]}")
    return 0


COMMANDS = {
    "build": {"_help": "convert a dataset into shards + dataset.json (SOURCE: one of the commands below)",
              "imagefolder": imagefolder, "mnist": mnist, "cifar10": cifar10, "cifar100": cifar100, "npz": npz,
              "digits": digits, "pairs": pairs},
    "info": info,
    "verify": verify,
    "encode": encode,
}


def main(argv: list[str]) -> int:
    import logging

    from lit_diffusion.data.errors import BuildError, DataError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(COMMANDS, argv, "lit-diffusion data", errors=(BuildError, DataError, ValueError, FileNotFoundError))
