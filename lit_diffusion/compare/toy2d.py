"""Head-to-head on a 2-D toy distribution: train DDPM, flow matching, rectified flow (and its reflow),
consistency models (training and distillation), the few-step family (MeanFlow, sCM, ECT tuned from the
flow-matching run) and INDM (a flow around a linear diffusion) against the same linear diffusion without the
flow, with the same MLP, budget and seed, and report each one's sliced Wasserstein distance to fresh data at
several NFEs, with untrained baselines (and for INDM, the exact NLL). Pure torch: a few minutes on a laptop CPU."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.backbones.flows import IdentityFlow, VectorFlow
from lit_diffusion.backbones.indm_network import INDMNetwork
from lit_diffusion.data.toy import sample_toy
from lit_diffusion.evaluation.flow_likelihood import flow_log_likelihood
from lit_diffusion.evaluation.sliced_wasserstein import sliced_wasserstein
from lit_diffusion.objectives import (
    DDPM,
    INDM,
    ConsistencyCurriculum,
    ConsistencyDistillation,
    ConsistencyTraining,
    ConsistencyTuning,
    ContinuousConsistency,
    FlowMatching,
    MeanFlow,
    RectifiedFlow,
    straightness,
)


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


def train(objective, cfg: ToyConfig, net: MLP | None = None, pairs=None, log=None) -> MLP:
    """Adam with a cosine learning-rate decay; `pairs` = (noise, data) coupling for reflow."""
    net = net if net is not None else make_net(cfg)
    extra = list(objective.parameters()) if hasattr(objective, "parameters") else []  # e.g. sCM's adaptive weight
    opt = torch.optim.Adam([*net.parameters(), *extra], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    for step in range(cfg.steps):
        objective.set_training_step(step, progress=step / cfg.steps)
        if pairs is None:
            x0, noise = sample_toy(cfg.dataset, cfg.batch_size, generator=g), None
        else:
            idx = torch.randint(0, pairs[0].shape[0], (cfg.batch_size,), generator=g)
            noise, x0 = pairs[0][idx], pairs[1][idx]
        loss = objective.loss(net, x0, generator=g, noise=noise).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{type(objective).__name__}: loss is {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step + 1) % max(1, cfg.steps // 4) == 0:
            log(f"  {type(objective).__name__:<24} step {step + 1:>5}/{cfg.steps}  loss {loss.item():.4f}")
    return net.eval()


def evaluate(objective, net, cfg: ToyConfig, sampler: str, nfe: int, seed: int = 123) -> float:
    """Sliced Wasserstein distance between `eval_samples` generated and fresh data samples."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(cfg.eval_samples, 2, generator=g)
    with torch.no_grad():
        x = objective.sample(net, noise, sampler=sampler, nfe=nfe, generator=g)
    data = sample_toy(cfg.dataset, cfg.eval_samples, generator=torch.Generator().manual_seed(seed + 1))
    return sliced_wasserstein(x, data, generator=torch.Generator().manual_seed(seed + 2))


def run(cfg: ToyConfig, log=print) -> dict:
    """Train every objective and return {name: {"sw": {label: distance}, "seconds": s}} plus extras."""
    results = {}

    def record(name, objective, net, evals, seconds, **extra):
        results[name] = {"sw": {f"{s}@{n}": evaluate(objective, net, cfg, s, n) for s, n in evals},
                         "seconds": seconds, **extra}
        log(f"{name:<26} " + "  ".join(f"{k}: {v:.3f}" for k, v in results[name]["sw"].items()) + f"  ({seconds:.1f} s)")

    ode_evals = [("euler", 1), ("euler", 4), ("heun", 33)]
    curriculum = ConsistencyCurriculum(total_steps=cfg.steps, s0=10, s1=160)
    timed = {}
    for name, objective, evals in [
        ("ddpm", DDPM(prediction="v", discrete=False, schedule="cosine"), [("ddim", 4), ("dpm++2m", 32)]),
        ("flow_matching", FlowMatching(), ode_evals),
        ("rectified_flow", RectifiedFlow(), ode_evals),
        ("consistency_training", ConsistencyTraining(sigma_max=20.0, curriculum=curriculum), [("consistency", 1), ("consistency", 2)]),
    ]:
        start = time.perf_counter()
        net = train(objective, cfg, log=log)
        timed[name] = (objective, net)
        record(name, objective, net, evals, time.perf_counter() - start)
    untrained_fm = FlowMatching()
    record("untrained (reference)", untrained_fm, make_net(cfg).eval(), [("euler", 4)], 0.0)

    # reflow: pairs from the 1-rectified flow, then the 2-rectified flow fine-tuned on them
    rf, rf_net = timed["rectified_flow"]
    start = time.perf_counter()
    noise = torch.randn(20 * cfg.batch_size, 2, generator=torch.Generator().manual_seed(cfg.seed + 7))
    pairs = rf.reflow_pairs(rf_net, noise, sampler="heun", nfe=33)
    reflow_net = make_net(cfg)
    reflow_net.load_state_dict(rf_net.state_dict())
    reflow_net = train(rf, cfg, net=reflow_net.train(), pairs=pairs, log=log)
    probe = torch.randn(cfg.eval_samples, 2, generator=torch.Generator().manual_seed(99))
    record("2-rectified_flow", rf, reflow_net, ode_evals, time.perf_counter() - start,
           straightness=straightness(rf, reflow_net, probe))
    results["rectified_flow"]["straightness"] = straightness(rf, rf_net, probe)
    log(f"straightness: 1-rectified {results['rectified_flow']['straightness']:.4f}, "
        f"2-rectified {results['2-rectified_flow']['straightness']:.4f}")

    # consistency distillation from the flow-matching teacher
    fm, fm_net = timed["flow_matching"]
    start = time.perf_counter()
    cd = ConsistencyDistillation(fm, fm_net, teacher_sampler="heun", num_scales=18, sigma_max=20.0)
    cd_net = train(cd, cfg, log=log)
    record("consistency_distillation", cd, cd_net, [("consistency", 1), ("consistency", 2)], time.perf_counter() - start)
    few_step(cfg, timed["flow_matching"], record, log)
    if cfg.indm:
        flow_plus_diffusion(cfg, record, log)
    return results


def few_step(cfg: ToyConfig, flow_matching, record, log) -> None:
    """MeanFlow and sCM from scratch, ECT tuned from the flow-matching run (its steps count on top), each
    with its untrained network as the baseline (for ECT: the flow-matching model before tuning). The JVP
    objectives embed t (and r) at time_scale 1 rather than 1000: with 1000 t the network's time derivative
    dominates the JVP (Lu & Song 2024, Sec. 4.1); measured on this toy, sCM 1-step SW2 0.41 -> 0.07."""
    fm, fm_net = flow_matching
    one_two = [("mean_flow", 1), ("mean_flow", 2)]
    for name, objective, evals, second in [
        ("mean_flow", MeanFlow(), one_two, True),
        ("continuous_consistency", ContinuousConsistency(warmup_steps=cfg.steps // 5), [("consistency", 1), ("consistency", 2)], False),
    ]:
        record(f"{name} (untrained)", objective, make_net(cfg, second, 1.0).eval(), evals[:1], 0.0)
        start = time.perf_counter()
        record(name, objective, train(objective, cfg, net=make_net(cfg, second, 1.0).train(), log=log), evals,
               time.perf_counter() - start)
    ect = ConsistencyTuning(base=fm)
    record("consistency_tuning (init: flow_matching)", ect, fm_net, [("consistency", 1)], 0.0)
    net = make_net(cfg)
    ConsistencyTuning.load_pretrained(net, fm_net.state_dict())
    start = time.perf_counter()
    record("consistency_tuning", ect, train(ect, cfg, net=net.train(), log=log), [("consistency", 1), ("consistency", 2)],
           time.perf_counter() - start, pretraining_steps=cfg.steps)


def flow_plus_diffusion(cfg: ToyConfig, record, log) -> None:
    """INDM (Kim et al. 2022): a RealNVP flow g around the VP diffusion, trained jointly by the likelihood
    bound, against the same diffusion and score MLP with the identity flow (the linear diffusion). Both also
    report the exact NLL of held-out data through the probability-flow ODE, in nats per sample."""
    held_out = sample_toy(cfg.dataset, cfg.likelihood_samples, generator=torch.Generator().manual_seed(cfg.seed + 11))
    objective = INDM()
    for name, flow in [("indm", lambda: VectorFlow(2, layers=6, hidden=64)),
                       ("linear diffusion (indm, identity flow)", IdentityFlow)]:
        torch.manual_seed(cfg.seed)
        net = INDMNetwork(flow(), make_net(cfg))
        start = time.perf_counter()
        net = train(objective, cfg, net=net.train(), log=log)
        seconds = time.perf_counter() - start
        log_p, _ = flow_log_likelihood(objective, net, held_out, exact=True, rtol=1e-5, atol=1e-5)
        nll = float(-log_p.mean())
        record(name, objective, net, [("euler", 100), ("dpm++2m", 32)], seconds, nll=nll)
        log(f"  {name}: NLL {nll:.3f} nats per sample on {cfg.likelihood_samples} held-out points")
