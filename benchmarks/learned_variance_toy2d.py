"""Learned vs fixed reverse variances for DDPM ancestral sampling on a 2-D toy (Nichol & Dhariwal 2021, sec. 3.1).

For each chain length T in --chains, two MLPs with the same width, depth, seed, optimiser and batches train
discrete DDPM (linear betas, eps prediction): one with L_simple (fixed variance), one with the hybrid loss
L_simple + 0.001 L_vlb and twice the output channels (variance="learned_range"; the n = 1 term is the Gaussian
density: the data is continuous). Both are sampled with --nfe DDPM ancestral steps (on a chain of T = nfe steps
exactly its own steps; on T = 1000 a respaced grid, their sec. 4): the fixed-variance model with beta-tilde
("fixed_small") and beta ("fixed_large"), the learned one with its variance and, to separate the variance from
the mean, with its own mean and beta-tilde. Scores (lower is better; mean +- spread over --eval-seeds noise
seeds): the sliced Wasserstein-2 distance to fresh data ("data vs data" is its floor), and the RMS distance per
coordinate of each sample to its nearest mode (eight_gaussians only; the data's is 0.100: smaller means the
modes are drawn too narrow, larger too wide).

  python benchmarks/learned_variance_toy2d.py --chains 50 1000 --exact-mean --steps 3000 --n-eval 10000
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from lit_diffusion.backbones.mlp import MLP
from lit_diffusion.data.toy import eight_gaussians, sample_toy
from lit_diffusion.evaluation.sliced_wasserstein import sliced_wasserstein
from lit_diffusion.objectives import DDPM, oracle_network


def mode_rms(x: torch.Tensor) -> float:
    """RMS per coordinate of the distance from each sample to its nearest eight_gaussians mode (data: 0.100)."""
    d = torch.cdist(x.double(), eight_gaussians().means).min(1).values
    return float(d.pow(2).mean().div(x.shape[1]).sqrt())


def make_net(args, learned: bool) -> MLP:
    torch.manual_seed(args.seed)
    net = MLP(dim=2, width=args.width, depth=args.depth)
    if learned:  # the same trunk with a second output half for the variance channel v
        net.output = nn.Linear(args.width, 4)
        nn.init.xavier_uniform_(net.output.weight)
        nn.init.zeros_(net.output.bias)
    return net


def train(net, objective, args) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    data_gen, noise_gen = torch.Generator().manual_seed(args.seed), torch.Generator().manual_seed(args.seed + 1)
    for _ in range(args.steps):
        loss = objective.loss(net, sample_toy(args.dataset, args.batch, generator=data_gen), generator=noise_gen).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return float(loss.detach())


def score(objective, net, args, nfe: int) -> tuple[float, float, float]:
    values, spreads = [], []
    for seed in range(args.eval_seeds):
        g = torch.Generator().manual_seed(1000 + seed)
        with torch.no_grad():
            x = objective.sample(net, torch.randn(args.n_eval, 2, generator=g), sampler="ddpm", nfe=nfe, generator=g)
        data = sample_toy(args.dataset, args.n_eval, generator=torch.Generator().manual_seed(2000 + seed))
        values.append(sliced_wasserstein(x, data, projections=512, generator=torch.Generator().manual_seed(seed)))
        spreads.append(mode_rms(x) if args.dataset == "eight_gaussians" else float("nan"))
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, statistics.mean(spreads)


class ExactMeanLearnedVariance(nn.Module):
    """The mixture's exact eps (its analytic posterior mean) in the mean channels, an MLP's v in the variance
    channels: with the mean exact, L_vlb trains the variance towards the true reverse-step variance."""

    def __init__(self, exact_eps, args):
        super().__init__()
        self.exact_eps, self.v = exact_eps, make_net(args, learned=False)

    def forward(self, x, t, cond=None):
        return torch.cat([self.exact_eps(x, t).to(x.dtype), self.v(x, t)], dim=1)


def compare(args, chain: int, start: float, exact_mean: bool = False) -> None:
    """Train (or, with exact_mean, take the analytic mean and train only a variance) and score the four rows."""
    learned_objective = DDPM(num_steps=chain, variance="learned_range", vlb_decoder="gaussian")
    if exact_mean:
        fixed_net = oracle_network(eight_gaussians(), DDPM(num_steps=chain))
        learned_net = ExactMeanLearnedVariance(fixed_net, args)
        loss_fixed = float("nan")
        label = "exact mean"
    else:
        fixed_net, learned_net = make_net(args, learned=False), make_net(args, learned=True)
        loss_fixed = train(fixed_net, DDPM(num_steps=chain), args)
        fixed_net.eval()
        label = "trained"
    loss_learned = train(learned_net, learned_objective, args)
    learned_net.eval()
    print(f"T = {chain}, {label}: final loss fixed {loss_fixed:.4f}, hybrid {loss_learned:.4f} "
          f"({time.perf_counter() - start:.0f} s so far)")

    def mean_only(x, t, cond=None):  # the learned model's mean channels, for beta-tilde sampling
        return learned_net(x, t, cond)[:, :2]

    rows = [
        ("fixed model, fixed_small (beta-tilde)", DDPM(num_steps=chain), fixed_net),
        ("fixed model, fixed_large (beta)", DDPM(num_steps=chain, variance="fixed_large"), fixed_net),
        ("learned model, its mean + beta-tilde", DDPM(num_steps=chain), mean_only),
        ("learned model, learned variance", DDPM(num_steps=chain, variance="learned_range"), learned_net),
    ]
    if exact_mean:  # the fixed and the learned model share the exact mean: row 3 repeats row 1
        rows = [rows[0], rows[1], rows[3]]
    for nfe in args.nfe:
        for name, objective, net in rows:
            mean, std, rms = score(objective, net, args, nfe)
            name = name.replace("fixed model", "exact mean").replace("learned model", "exact mean") if exact_mean else name
            print(f"  T {chain:>4} {label:<10} ddpm {nfe:>4} steps  {name:<40} SW2 {mean:.4f} +- {std:.4f}   "
                  f"mode RMS {rms:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="eight_gaussians", choices=["eight_gaussians", "two_moons"])
    p.add_argument("--chains", type=int, nargs="+", default=[50, 1000], help="discrete chain lengths T to train")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--nfe", type=int, nargs="+", default=[50])
    p.add_argument("--n-eval", type=int, default=20000)
    p.add_argument("--eval-seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exact-mean", action="store_true",
                   help="also: the analytic mean of eight_gaussians with a learned vs fixed variance")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    floor = statistics.mean(
        sliced_wasserstein(sample_toy(args.dataset, args.n_eval, generator=torch.Generator().manual_seed(3000 + s)),
                           sample_toy(args.dataset, args.n_eval, generator=torch.Generator().manual_seed(2000 + s)),
                           projections=512, generator=torch.Generator().manual_seed(s))
        for s in range(args.eval_seeds))
    print(f"{args.dataset}: {args.steps} steps x batch {args.batch}, seed {args.seed}; sliced W2 to fresh data "
          f"({args.n_eval} samples, {args.eval_seeds} seeds; data vs data {floor:.4f}); mode RMS (data 0.100)")
    for chain in args.chains:
        compare(args, chain, start)
        if args.exact_mean:
            compare(args, chain, start, exact_mean=True)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
