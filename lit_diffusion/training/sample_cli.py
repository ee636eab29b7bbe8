"""`lit-diffusion sample --ckpt PATH --sampler NAME --nfe N --num K [--cfg S] --out DIR`.

Writes one PNG per sample, a grid PNG and `samples.npz` (uint8 images, labels). EMA weights by default.
Sample i always starts from the noise of generator seed (seed, i), so the output does not depend on how
many devices share the work: under torchrun / srun each rank generates the indices rank, rank + world, ...
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

from lit_diffusion.samplers import SAMPLERS
from lit_diffusion.training.loading import load_module
from lit_diffusion.training.preview import save_png


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.zeros((rows * (h + 2) + 2, columns * (w + 2) + 2, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, columns)
        canvas[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + q * (w + 2):2 + q * (w + 2) + w] = image
    return canvas


def noise_for(indices: list[int], shape, seed: int) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + i)) for i in indices])


def parse(argv):
    p = argparse.ArgumentParser(prog="lit-diffusion sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="checkpoint written by `lit-diffusion fit`")
    p.add_argument("--sampler", default=None, choices=sorted(SAMPLERS), help="default: the objective's")
    p.add_argument("--nfe", type=int, default=None, help="network evaluations (default: the objective's)")
    p.add_argument("--num", type=int, default=64, help="number of samples")
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (1: none)")
    p.add_argument("--label", type=int, default=None, help="class of every sample (default: cycle through classes)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--raw-weights", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error(f"--num must be >= 1, got {args.num}")
    if args.nfe is not None and args.nfe < 1:
        p.error(f"--nfe must be >= 1, got {args.nfe}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {args.batch_size}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    device = torch.device(args.device, int(os.environ.get("LOCAL_RANK", 0))) if args.device == "cuda" else torch.device(args.device)
    module = load_module(args.ckpt).to(device)
    if module.sample_shape is None:
        raise SystemExit(f"lit-diffusion sample: {args.ckpt} records no sample shape (train at least one step)")
    net = module.backbone if args.raw_weights else module.ema.shadow
    num_classes = getattr(module.backbone, "num_classes", 0) if module.conditional else 0
    if args.label is not None and not 0 <= args.label < max(num_classes, 1):
        raise SystemExit(f"lit-diffusion sample: --label {args.label} outside the model's {num_classes} classes")
    if args.cfg != 1.0:
        if num_classes == 0:
            raise SystemExit("lit-diffusion sample: --cfg needs a class-conditional model")
        if module.objective.null_label is None:
            module.objective.null_label = num_classes  # the backbone's reserved null class (DESIGN §3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mine = list(range(rank, args.num, world))
    nfe = None
    for start in range(0, len(mine), args.batch_size):
        idx = mine[start:start + args.batch_size]
        noise = noise_for(idx, module.sample_shape, args.seed).to(device)
        labels = None
        if num_classes:
            labels = torch.tensor([args.label if args.label is not None else i % num_classes for i in idx], device=device)
        result = module.objective.sample_with_info(net, noise, sampler=args.sampler, nfe=args.nfe, cond=labels,
                                                   guidance=args.cfg, generator=torch.Generator(device).manual_seed(args.seed + start))
        nfe = result.nfe
        for i, image in zip(idx, to_uint8(result.x0)):
            save_png(image, out / f"sample_{i:06d}.png")
        print(f"rank {rank}: {min(start + args.batch_size, len(mine))}/{len(mine)} samples ({nfe} NFE each)", file=sys.stderr)
    if world > 1:
        dist.barrier()
    if rank == 0:
        images = np.stack([np.array(Image.open(out / f"sample_{i:06d}.png")) for i in range(args.num)])
        images = images[..., None] if images.ndim == 3 else images
        labels = np.array([args.label if args.label is not None else i % num_classes for i in range(args.num)]) if num_classes else np.zeros(0)
        np.savez(out / "samples.npz", images=images, labels=labels)
        save_png(grid(images[:256]), out / "grid.png")
        print(f"wrote {args.num} samples ({nfe} NFE, sampler {args.sampler or module.objective.default_sampler}) "
              f"to {out} (PNGs, grid.png, samples.npz)")
    return 0
