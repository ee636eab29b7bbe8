"""`lit-diffusion reflow --ckpt RF.ckpt --num N --out DIR [--sampler heun --nfe 33]`: the reflow step of
rectified flow (Liu et al. 2022, Alg. 1). Draws N noises, integrates the trained flow from each (EMA
weights), and writes the (noise, sample) couplings as pair shards (`lit-diffusion data build pairs`).
Train the next flow on them with the rectified-flow config and `--data.train_shards DIR`, starting
from the parent's weights with `--model.init_from RF.ckpt`."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from lit_diffusion.training.loading import load_module


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lit-diffusion reflow", description=__doc__)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--num", type=int, required=True, help="number of (noise, sample) pairs")
    p.add_argument("--out", required=True, help="output folder for the pair shards")
    p.add_argument("--sampler", default="heun")
    p.add_argument("--nfe", type=int, default=33)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error(f"--num must be >= 1, got {args.num}")
    module = load_module(args.ckpt).to(args.device)
    if module.sample_shape is None:
        raise SystemExit(f"lit-diffusion reflow: {args.ckpt} records no sample shape")
    if type(module.objective).__name__ != "RectifiedFlow":
        print(f"note: reflow from a {type(module.objective).__name__} model; the pairs are its ODE couplings",
              file=sys.stderr)
    g = torch.Generator().manual_seed(args.seed)
    noises, targets = [], []
    for start in range(0, args.num, args.batch_size):
        n = min(args.batch_size, args.num - start)
        noise = torch.randn((n, *module.sample_shape), generator=g)
        x0 = module.generate(noise.to(args.device), sampler=args.sampler, nfe=args.nfe)
        noises.append(noise.numpy())
        targets.append(x0.float().cpu().numpy())
        print(f"reflow: {start + n}/{args.num} pairs", file=sys.stderr)
    from lit_diffusion.cli import main as cli_main  # the data writer's own command writes the shards

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "noise.npy", np.concatenate(noises).astype(np.float32))
        np.save(Path(tmp) / "target.npy", np.concatenate(targets).astype(np.float32))
        return cli_main(["data", "build", "pairs", str(Path(tmp) / "noise.npy"), str(Path(tmp) / "target.npy"),
                         "--out", args.out, "--no-progress", "--workers", "0", "--overwrite"])
