"""MNIST bits/dim and FD of INDM vs the identity-flow baseline (the VP SDE with likelihood weighting) at equal
training time.

Both train the same U-Net score network with INDM's objective (NELBO, log-SNR importance sampling of t,
uniform dequantization) for the same wall time (--seconds each; --steps instead fixes the step count); INDM adds
the "small" multiscale flow, so it takes fewer, dearer steps. Reported per model:
- bits/dim in data space through the PF-ODE (Hutchinson divergence) on --n-eval held-out test images, 256 bins;
- the NELBO in bits/dim on the same images (an upper bound of the first);
- FD of --num-samples samples (--sampler on z, --nfe steps, then g^-1) against the test set, in the feature space of
  the project's MNIST classifier (the offline default of `evaluation.default_feature_network`).

  python benchmarks/indm_mnist.py --mnist ../shared/data/mnist --work /tmp/indm-mnist --steps 400 \
      --n-eval 100 --num-samples 1000 --nfe 100 --rtol 1e-3 --threads 2
"""
from __future__ import annotations

import argparse
import gzip
import json
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


def train(net, objective, data, args, device) -> tuple[int, float]:
    """Adam with clipping on random batches until --seconds (or --steps) are spent; (steps, seconds)."""
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    g = torch.Generator(device=device).manual_seed(args.seed)
    start, steps = time.perf_counter(), 0
    while (steps < args.steps) if args.seconds is None else (time.perf_counter() - start < args.seconds):
        idx = torch.randint(0, len(data), (args.batch,), generator=g, device=device)
        loss = objective.loss(net, data[idx], generator=g).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        steps += 1
        if steps % 100 == 0:
            print(f"  step {steps}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return steps, time.perf_counter() - start


@torch.no_grad()
def samples(net, objective, n: int, sampler: str, nfe: int, device) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(0)
    out = [objective.sample(net, torch.randn(min(250, n - i), 1, 28, 28, generator=g, device=device),
                            sampler=sampler, nfe=nfe, generator=g).clamp(-1, 1).cpu() for i in range(0, n, 250)]
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", type=Path, default=Path("/work/shared/data/mnist"))
    p.add_argument("--work", type=Path, default=Path("/tmp/indm-mnist"), help="shards, classifier cache, results")
    p.add_argument("--seconds", type=float, default=None, help="training wall time of each model (equal compute)")
    p.add_argument("--steps", type=int, default=20000, help="steps of each model when --seconds is not given")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--n-eval", type=int, default=1000, help="test images for bits/dim")
    p.add_argument("--num-samples", type=int, default=1000, help="samples for FD (0: skip FD)")
    p.add_argument("--sampler", default="ddpm", help="sampler of the FD samples (INDM's default: ancestral)")
    p.add_argument("--nfe", type=int, default=100)
    p.add_argument("--rtol", type=float, default=1e-4, help="tolerance of the adaptive PF-ODE solve (rtol = atol)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = read_images(args.mnist / "train-images-idx3-ubyte.gz").to(device)
    test = read_images(args.mnist / "t10k-images-idx3-ubyte.gz")[: args.n_eval].to(device)
    objective = INDM(dequantize_bins=256)
    budget = f"{args.seconds:.0f} s" if args.seconds is not None else f"{args.steps} steps"
    print(f"MNIST on {device}: {budget} x batch {args.batch} per model; bits/dim (256 bins) on {len(test)} test "
          f"images; FD of {args.num_samples} samples ({args.sampler}@{args.nfe})", flush=True)
    scorer = fd_scorer(args) if args.num_samples else None
    rows = []
    for name, flow in [("identity flow (VP)", lambda: IdentityFlow()),
                       ("INDM (small flow)", lambda: MultiscaleFlow(1, levels=2, steps=4, hidden=64))]:
        torch.manual_seed(args.seed)
        score_net = UNet(in_channels=1, channels=32, channel_mult=[1, 2], num_res_blocks=1, attention_levels=[1],
                         norm_groups=8, dropout=0.0)
        net = INDMNetwork(flow(), score_net).to(device)
        print(f"{name}:", flush=True)
        steps, seconds = train(net, objective, data, args, device)
        net.eval()
        torch.save(net.state_dict(), args.work / f"{'indm' if 'INDM' in name else 'identity'}.pt")  # for re-evaluation
        bpd = flow_bits_per_dim(objective, net, test, data_bins=256, exact=False, rtol=args.rtol, atol=args.rtol,
                                generator=torch.Generator(device=device).manual_seed(1))
        nelbo = objective.nelbo(net, test, draws=16, generator=torch.Generator(device=device).manual_seed(2))
        nelbo_bpd = nelbo / math.log(2) + math.log2(256 / 2)  # density on [-1, 1] -> 256 bins of width 2/256
        fd = scorer(samples(net, objective, args.num_samples, args.sampler, args.nfe, device)) if scorer else float("nan")
        rows.append({"model": name, "ode_bpd": float(bpd.mean()), "nelbo_bpd": float(nelbo_bpd.mean()), "fd": fd,
                     "steps": steps, "train_s": seconds, "params": sum(q.numel() for q in net.parameters())})
        print(f"  -> {rows[-1]}", flush=True)
    print(f"\n| model | ODE bits/dim | NELBO bits/dim | FD ({args.sampler}@{args.nfe}) | steps | train s | parameters |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ode_bpd']:.3f} | {r['nelbo_bpd']:.3f} | {r['fd']:.1f} | {r['steps']} | "
              f"{r['train_s']:.0f} | {r['params']:,} |")
    (args.work / "indm_results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                             "rows": rows}, indent=1))


def fd_scorer(args):
    """FD against the test set in the project's MNIST classifier space (shards built and classifier trained
    once under --work, as in latent_vs_pixel_mnist.py)."""
    from latent_vs_pixel_mnist import build, score  # the sibling benchmark: same shards, same scoring

    from lit_diffusion.evaluation.features import default_feature_network
    from lit_diffusion.evaluation.reference import reference_stats

    build(args.mnist, args.work, None)
    cache = args.work / "cache"
    feature_net = default_feature_network(str(args.work / "mnist" / "train"), cache_dir=cache)
    reference = reference_stats(feature_net, str(args.work / "mnist" / "test"), cache_dir=cache, num_workers=0)
    return lambda x: score(x, feature_net, reference)


if __name__ == "__main__":
    main()
