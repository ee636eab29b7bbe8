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
import sys
from typing import Literal, Optional

from lit_diffusion.commands.parsing import run
from lit_diffusion.data.build import SOURCES, command_line


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
    from lit_diffusion.data.latent_encode import EncodeJob, encode_dataset, open_images
    from lit_diffusion.data.latent_scale import scalar_constants
    from lit_diffusion.data.latent_space import LatentSpace
    from lit_diffusion.distributed import process
    from lit_diffusion.generation.latents import open_autoencoder

    rank, world = process.rank_world()
    device = str(process.device(device))  # this rank's GPU when there is one
    model, record = open_autoencoder(autoencoder, subfolder)
    scale, shift = scalar_constants(model, record.kind, normalization, scale)
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
              **SOURCES},
    "info": info,
    "verify": verify,
    "encode": encode,
}


def main(argv: list[str]) -> int:
    import logging

    from lit_diffusion.data.errors import BuildError, DataError
    from lit_diffusion.stop_signals import report_stop, stop_on_signals

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with stop_on_signals():
        try:
            return run(COMMANDS, argv, "lit-diffusion data",
                       errors=(BuildError, DataError, ValueError, FileNotFoundError))
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the writers cleaned up and say what they kept
            return report_stop(" ".join(["lit-diffusion data", *argv[:1]]), stop)
