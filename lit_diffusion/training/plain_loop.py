"""The plain training loop: an objective's loss and Adam with a cosine learning-rate decay, no Lightning. Used by
the 2-D head-to-head (compare/toy2d.py) and by tests that train an objective directly through its public API."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Batches = Callable[[torch.Generator], "tuple[torch.Tensor, torch.Tensor | None]"]  # g -> (x0, noise or None)


def train_plain(objective, net: nn.Module, batches: Batches, *, steps: int, lr: float, seed: int,
                log: Callable[[str], None] | None = None) -> nn.Module:
    """Train `net` (and the objective's own parameters, e.g. sCM's adaptive weight) for `steps` optimiser steps on
    `batches(g)`, one generator `g` seeded by `seed` drawing both the data and the objective's noise and times;
    logs the loss four times when `log` is given. Stops with FloatingPointError on a non-finite loss."""
    extra = list(objective.parameters()) if hasattr(objective, "parameters") else []
    opt = torch.optim.Adam([*net.parameters(), *extra], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        objective.set_training_step(step, progress=step / steps)
        x0, noise = batches(g)
        loss = objective.loss(net, x0, generator=g, noise=noise).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{type(objective).__name__}: loss is {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step + 1) % max(1, steps // 4) == 0:
            log(f"  {type(objective).__name__:<24} step {step + 1:>5}/{steps}  loss {loss.item():.4f}")
    return net.eval()
