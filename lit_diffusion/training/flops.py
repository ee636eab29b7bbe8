"""Training FLOPs of one optimiser step: the step's loss (every forward, backward and JVP pass of its objective,
a distillation teacher's forwards included) counted by torch.utils.flop_counter. One definition, used by the
training log's throughput (training/module.py) and by a comparison's compute accounting (compare/compute.py)."""
from __future__ import annotations

import torch

from lit_diffusion.distributed.throughput import Throughput


def training_step_probe(module, batch: dict) -> None:
    """The training step's forward and backward of `module` (a DiffusionModule: backbone, objective, conditional)
    on `batch`, for the FLOP counter: gradients are returned, not accumulated, and the noise comes from its own
    generator, so nothing the real step uses changes (the real step is not run under the counter, which can
    change kernel choices)."""
    x0, noise = batch["x"], batch.get("noise")
    cond = batch.get("label") if module.conditional else None
    device = module.device
    g = torch.Generator(device=device).manual_seed(0)
    # dropout draws from the global RNG: fork it, or a resumed run (which probes again) would drift
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        loss = module.objective.loss(module.backbone, x0, cond, generator=g, noise=noise).mean()
        torch.autograd.grad(loss, [p for p in module.backbone.parameters() if p.requires_grad], allow_unused=True)


def step_flops(module, batch: dict) -> float:
    """FLOPs of one training step of `module` on `batch` (0.0 where the counter cannot see its work)."""
    meter = Throughput(torch.device("cpu"), 0, 0)
    meter.count_flops(module.backbone, lambda: training_step_probe(module, batch))
    return float(meter.flops_per_step or 0.0)
