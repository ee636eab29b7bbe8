"""MNIST bits/dim of INDM vs the identity-flow baseline (the VP SDE with likelihood weighting) at equal steps.

Both train the same U-Net score network with INDM's objective (NELBO, log-SNR importance sampling of t,
uniform dequantization); INDM adds the "small" multiscale flow. Bits/dim in data space through the PF-ODE
(Hutchinson divergence) on held-out test images, with 256 bins, and the NELBO in bits/dim.
Sized for a GPU; on a CPU use --steps 20 --n-eval 8 as a smoke run only.

  python benchmarks/indm_mnist.py --mnist /work/shared/data/mnist --steps 20000 --batch 128 --n-eval 1000
"""
from __future__ import annotations

import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch

from lit_diffusion.backbones import INDMNetwork, IdentityFlow, MultiscaleFlow, UNet
from lit_diffusion.evaluation.flow_likelihood import flow_bits_per_dim
from lit_diffusion.objectives import INDM


def read_images(path: Path) -> torch.Tensor:
    """An MNIST idx3 file -> (N, 1, 28, 28) float32 in [-1, 1]."""
    with gzip.open(path, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    return torch.from_numpy(raw.reshape(-1, 1, 28, 28).astype(np.float32)) / 127.5 - 1.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", type=Path, default=Path("/work/shared/data/mnist"))
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train = read_images(args.mnist / "train-images-idx3-ubyte.gz").to(device)
    test = read_images(args.mnist / "t10k-images-idx3-ubyte.gz")[: args.n_eval].to(device)
    objective = INDM(dequantize_bins=256)
    print(f"MNIST on {device}: {args.steps} steps x batch {args.batch}; bits/dim (256 bins) on {len(test)} test images")
    print(f"{'model':<22} {'ODE bpd':>8} {'NELBO bpd':>10} {'params':>9} {'train s':>8}")
    for name, flow in [("identity flow (VP)", lambda: IdentityFlow()),
                       ("INDM (small flow)", lambda: MultiscaleFlow(1, levels=2, steps=4, hidden=64))]:
        torch.manual_seed(args.seed)
        score = UNet(in_channels=1, channels=32, channel_mult=[1, 2], num_res_blocks=1, attention_levels=[1],
                     norm_groups=8, dropout=0.0)
        net = INDMNetwork(flow(), score).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        g = torch.Generator(device=device).manual_seed(args.seed)
        start = time.perf_counter()
        for step in range(args.steps):
            idx = torch.randint(0, len(train), (args.batch,), generator=g, device=device)
            loss = objective.loss(net, train[idx], generator=g).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        seconds = time.perf_counter() - start
        net.eval()
        bpd = flow_bits_per_dim(objective, net, test, data_bins=256, exact=False, rtol=1e-4, atol=1e-4,
                                generator=torch.Generator(device=device).manual_seed(1))
        nelbo = objective.nelbo(net, test, draws=16, generator=torch.Generator(device=device).manual_seed(2))
        nelbo_bpd = nelbo / math.log(2) + math.log2(256 / 2)  # density on [-1, 1] -> 256 bins of width 2/256
        params = sum(q.numel() for q in net.parameters())
        print(f"{name:<22} {float(bpd.mean()):8.3f} {float(nelbo_bpd.mean()):10.3f} {params:9d} {seconds:8.1f}",
              flush=True)


if __name__ == "__main__":
    main()
