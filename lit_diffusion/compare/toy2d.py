"""Head-to-head on a 2-D toy distribution: the suite of compare/toy2d_suite.py (DDPM, flow matching, rectified flow
and its reflow, consistency training and distillation, the few-step family: MeanFlow, sCM, ECT tuned from the
flow-matching run, and INDM against the same linear diffusion without its flow), each trained with the same MLP,
budget and seed in the plain loop (training.plain_loop), and each one's sliced Wasserstein distance to fresh data
at several NFEs, with untrained baselines (and for INDM, the exact NLL). Pure torch: a few minutes on a laptop CPU."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.backbones.flows import IdentityFlow, VectorFlow
from lit_diffusion.backbones.indm_network import INDMNetwork
from lit_diffusion.compare.toy2d_suite import TOY_SUITE, ToyEntry, ToyNet
from lit_diffusion.data.toy import sample_toy
from lit_diffusion.evaluation.flow_likelihood import flow_log_likelihood
from lit_diffusion.evaluation.sliced_wasserstein import sliced_wasserstein
from lit_diffusion.objectives import make_objective, straightness
from lit_diffusion.training.plain_loop import train_plain


@dataclass
class ToyConfig:
    dataset: str = "eight_gaussians"
    steps: int = 1500  # optimiser steps per objective
    batch_size: int = 256
    lr: float = 3e-3
    width: int = 128
    depth: int = 2
    seed: int = 0
    eval_samples: int = 2000
    likelihood_samples: int = 500  # held-out points of the exact NLL (INDM entries)
    indm: bool = True  # also train INDM and its identity-flow twin (the linear diffusion)


def make_net(cfg: ToyConfig, second_time: bool = False, time_scale: float = 1000.0) -> MLP:
    torch.manual_seed(cfg.seed)
    return MLP(dim=2, width=cfg.width, depth=cfg.depth, second_time=second_time, time_scale=time_scale)


def build_net(cfg: ToyConfig, spec: ToyNet):
    """The entry's network, its initial weights drawn from the suite's seed."""
    if spec.flow is None:
        return make_net(cfg, spec.second_time, spec.time_scale)
    torch.manual_seed(cfg.seed)
    flow = VectorFlow(2, layers=6, hidden=64) if spec.flow == "vector" else IdentityFlow()
    return INDMNetwork(flow, make_net(cfg, spec.second_time, spec.time_scale))


def train(objective, cfg: ToyConfig, net: MLP | None = None, pairs=None, log=None) -> MLP:
    """The plain loop on fresh toy data, or on the (noise, data) coupling `pairs` for reflow."""
    net = net if net is not None else make_net(cfg)

    def batches(g: torch.Generator):
        if pairs is None:
            return sample_toy(cfg.dataset, cfg.batch_size, generator=g), None
        idx = torch.randint(0, pairs[0].shape[0], (cfg.batch_size,), generator=g)
        return pairs[1][idx], pairs[0][idx]

    return train_plain(objective, net, batches, steps=cfg.steps, lr=cfg.lr, seed=cfg.seed + 1, log=log)


def generate(objective, net, cfg: ToyConfig, sampler: str, nfe: int, seed: int = 123) -> torch.Tensor:
    """`eval_samples` generated points (the same noise for every objective)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(cfg.eval_samples, 2, generator=g)
    with torch.no_grad():
        return objective.sample(net, noise, sampler=sampler, nfe=nfe, generator=g)


def evaluate(objective, net, cfg: ToyConfig, sampler: str, nfe: int, seed: int = 123, p: int = 2) -> float:
    """Sliced Wasserstein-p distance between `eval_samples` generated and fresh data samples."""
    x = generate(objective, net, cfg, sampler, nfe, seed)
    return distance_to_data(x, cfg, seed, p)


def distance_to_data(x: torch.Tensor, cfg: ToyConfig, seed: int = 123, p: int = 2) -> float:
    data = sample_toy(cfg.dataset, cfg.eval_samples, generator=torch.Generator().manual_seed(seed + 1))
    return sliced_wasserstein(x, data, generator=torch.Generator().manual_seed(seed + 2), p=p)


@dataclass
class ToyRun:
    """The suite's state while it runs: each finished entry's objective and trained network, and the results."""

    cfg: ToyConfig
    log: object = print
    objectives: dict = field(default_factory=dict)
    nets: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    def record(self, name: str, objective, net, evals, seconds: float, **extra) -> None:
        self.results[name] = {"sw": {f"{s}@{n}": evaluate(objective, net, self.cfg, s, n) for s, n in evals},
                              "seconds": seconds, **extra}
        self.log(f"{name:<26} " + "  ".join(f"{k}: {v:.3f}" for k, v in self.results[name]["sw"].items())
                 + f"  ({seconds:.1f} s)")


def run(cfg: ToyConfig, log=print, suite: tuple[ToyEntry, ...] = TOY_SUITE) -> dict:
    """Train every entry of the suite in order and return {name: {"sw": {label: distance}, "seconds": s}} plus
    extras (straightness of reflow, NLL of INDM, pre-training steps of a tuned run)."""
    state = ToyRun(cfg, log)
    for entry in suite:
        if entry.objective == "indm" and not cfg.indm:
            continue
        run_entry(state, entry)
    return state.results


def run_entry(state: ToyRun, entry: ToyEntry) -> None:
    cfg, log = state.cfg, state.log
    start = time.perf_counter()
    if entry.reflow_of is not None:
        return reflow(state, entry)
    objective = make_objective(entry.objective, **entry.options(state))
    if not entry.train:
        return state.record(entry.name, objective, build_net(cfg, entry.net).eval(), entry.evals, 0.0)
    extra = {}
    if entry.tune_from is not None:
        source = state.nets[entry.tune_from]
        state.record(entry.baseline, objective, source, entry.evals[:1], 0.0)
        net = build_net(cfg, entry.net)
        type(objective).load_pretrained(net, source.state_dict())
        start, extra = time.perf_counter(), {"pretraining_steps": cfg.steps}
    else:
        if entry.baseline is not None:
            state.record(entry.baseline, objective, build_net(cfg, entry.net).eval(), entry.evals[:1], 0.0)
            start = time.perf_counter()
        net = build_net(cfg, entry.net)
    net = train(objective, cfg, net=net.train(), log=log)
    seconds = time.perf_counter() - start
    state.objectives[entry.name], state.nets[entry.name] = objective, net
    if entry.likelihood:
        held_out = sample_toy(cfg.dataset, cfg.likelihood_samples, generator=torch.Generator().manual_seed(cfg.seed + 11))
        log_p, _ = flow_log_likelihood(objective, net, held_out, exact=True, rtol=1e-5, atol=1e-5)
        extra["nll"] = float(-log_p.mean())
    state.record(entry.name, objective, net, entry.evals, seconds, **extra)
    if entry.likelihood:
        log(f"  {entry.name}: NLL {extra['nll']:.3f} nats per sample on {cfg.likelihood_samples} held-out points")


def reflow(state: ToyRun, entry: ToyEntry) -> None:
    """Pairs (noise, sample) from the source entry's trained model, then its network fine-tuned on them with its
    objective; both paths' straightness on one probe."""
    cfg, source = state.cfg, entry.reflow_of
    objective, parent = state.objectives[source], state.nets[source]
    start = time.perf_counter()
    noise = torch.randn(20 * cfg.batch_size, 2, generator=torch.Generator().manual_seed(cfg.seed + 7))
    pairs = objective.reflow_pairs(parent, noise, sampler="heun", nfe=33)
    net = build_net(cfg, entry.net)
    net.load_state_dict(parent.state_dict())
    net = train(objective, cfg, net=net.train(), pairs=pairs, log=state.log)
    state.objectives[entry.name], state.nets[entry.name] = objective, net
    probe = torch.randn(cfg.eval_samples, 2, generator=torch.Generator().manual_seed(99))
    state.record(entry.name, objective, net, entry.evals, time.perf_counter() - start,
                 straightness=straightness(objective, net, probe))
    state.results[source]["straightness"] = straightness(objective, parent, probe)
    state.log(f"straightness: 1-rectified {state.results[source]['straightness']:.4f}, "
              f"2-rectified {state.results[entry.name]['straightness']:.4f}")
