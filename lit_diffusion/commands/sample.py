"""`lit-diffusion sample --ckpt PATH [--sampler NAME --nfe N] --num K [--cfg S] --out DIR`."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from lit_diffusion.commands.parsing import run


def _device(device: Optional[str]):
    """The torch device of this rank: under torchrun / srun each process takes its LOCAL_RANK's GPU."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device, int(os.environ.get("LOCAL_RANK", 0))) if device == "cuda" else torch.device(device)


def _load(ckpt: str, device, raw_weights: bool, label: Optional[int], cfg: float):
    """(module, network to sample with, number of classes), with the options checked against the model."""
    from lit_diffusion.training.loading import load_module

    module = load_module(ckpt).to(device)
    if module.sample_shape is None:
        raise SystemExit(f"lit-diffusion sample: {ckpt} records no sample shape (train at least one step)")
    net = module.backbone if raw_weights else module.ema.shadow
    num_classes = module.sample_classes
    if label is not None and not 0 <= label < max(num_classes, 1):
        raise SystemExit(f"lit-diffusion sample: --label {label} outside the model's {num_classes} classes")
    if cfg != 1.0:
        if num_classes == 0:
            raise SystemExit("lit-diffusion sample: --cfg needs a class-conditional model")
        if module.objective.null_label is None:
            module.objective.null_label = num_classes  # the backbone's reserved null class (DESIGN §3)
    return module, net, num_classes


def _write_collection(folder: Path, num: int, num_classes: int, label: Optional[int]) -> None:
    """samples.npz and grid.png, read back from the PNGs (the PNGs are the record, written by every rank)."""
    import numpy as np
    from PIL import Image

    from lit_diffusion.generation import image_grid, save_png

    images = np.stack([np.array(Image.open(folder / f"sample_{i:06d}.png")) for i in range(num)])
    images = images[..., None] if images.ndim == 3 else images
    labels = np.array([label if label is not None else i % num_classes for i in range(num)]) if num_classes \
        else np.zeros(0)
    np.savez(folder / "samples.npz", images=images, labels=labels)
    save_png(image_grid(images[:256], gap=2), folder / "grid.png")


def threshold_options(module, x0_threshold: str) -> dict:
    """--x0-threshold as sampler options: the module's default, none, or one asked for (image data only)."""
    from lit_diffusion.samplers import THRESHOLDS

    if x0_threshold == "default":
        return module.sample_options
    if x0_threshold == "none":
        return {}
    if x0_threshold not in THRESHOLDS:
        raise ValueError(f"--x0-threshold must be default, none or one of {list(THRESHOLDS)}, got {x0_threshold!r}")
    if not module.image_data:
        raise ValueError(f"--x0-threshold {x0_threshold} clips predictions to the image range [-1, 1]; this checkpoint's "
                         "data are latents or tensors (or it was trained before the data kind was recorded): use "
                         "--x0-threshold none")
    return {"x0_threshold": x0_threshold, "data_range": (-1.0, 1.0)}


def sample(*, ckpt: str, out: str, sampler: Optional[str] = None, nfe: Optional[int] = None, num: int = 64,
           cfg: float = 1.0, label: Optional[int] = None, seed: int = 0, batch_size: int = 256,
           raw_weights: bool = False, device: Optional[str] = None, autoencoder: Optional[str] = None,
           x0_threshold: str = "default") -> int:
    """Generate samples from a checkpoint: one PNG each, grid.png and samples.npz (uint8 images, labels).

    Sample i starts from the noise of (seed, i) and gets class i mod classes (lit_diffusion.generation), so
    the output depends on neither the batch size nor how many devices share the work: under torchrun / srun
    each rank generates the indices rank, rank + world, ...

    Args:
        ckpt: checkpoint written by `lit-diffusion fit`.
        out: output folder.
        sampler: sampler name (default: the objective's).
        nfe: network evaluations per sample (default: the objective's).
        num: number of samples.
        cfg: classifier-free guidance scale (1: none).
        label: class of every sample (default: cycle through the classes).
        seed: seed of the noise.
        batch_size: samples per forward pass.
        raw_weights: use the raw weights instead of the EMA.
        device: torch device (default: cuda when available, else cpu).
        autoencoder: latent models: where their autoencoder is now (default: the location recorded at training;
            its weights must be the recorded ones). Samples are decoded to images before they are saved.
        x0_threshold: "default" (the objective's choice for image data: DDPM with eps prediction clips x0, as Ho et
            al. 2020 do), "none", "clip" or "dynamic" (Saharia et al. 2022); image data in [-1, 1] only.
    """
    import torch.distributed as dist

    from lit_diffusion.generation import generate, save_png, to_uint8
    from lit_diffusion.generation.latents import LatentCodec, to_images

    for name, value in (("num", num), ("nfe", nfe), ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = _device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    module, net, num_classes = _load(ckpt, device, raw_weights, label, cfg)
    threshold = threshold_options(module, x0_threshold)
    codec = None if module.latent is None else LatentCodec(module.latent, autoencoder)
    if codec is not None:
        codec.autoencoder  # noqa: B018 (load it now: a missing or different autoencoder fails before sampling)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    done, mine, nfe_used = 0, len(range(rank, num, world)), nfe
    for batch in generate(module.objective, net, module.sample_shape, num, seed=seed, batch_size=batch_size,
                          num_classes=num_classes, label=label, device=device, rank=rank, world_size=world,
                          sampler=sampler, nfe=nfe, guidance=cfg, **threshold):
        nfe_used, done = batch.nfe, done + len(batch.indices)
        for i, image in zip(batch.indices, to_uint8(to_images(batch.x0, module.latent, codec))):
            save_png(image, folder / f"sample_{i:06d}.png")
        print(f"rank {rank}: {done}/{mine} samples ({nfe_used} NFE each)", file=sys.stderr)
    if world > 1:
        dist.barrier()
    if rank == 0:
        _write_collection(folder, num, num_classes, label)
        print(f"wrote {num} samples ({nfe_used} NFE, sampler {sampler or module.objective.default_sampler}, x0 "
              f"threshold {threshold.get('x0_threshold') or 'none'}) to {folder} (PNGs, grid.png, samples.npz)")
    return 0


def main(argv: list[str]) -> int:
    return run(sample, argv, "lit-diffusion sample", errors=(ValueError, FileNotFoundError), error_status=2)
