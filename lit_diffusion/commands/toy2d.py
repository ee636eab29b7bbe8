"""`lit-diffusion toy2d [--dataset two_moons] [--steps N] [--seed S]`."""
from __future__ import annotations

from typing import Literal

from lit_diffusion.commands.parsing import run


def toy2d(*, dataset: Literal["eight_gaussians", "two_moons"] = "eight_gaussians", steps: int = 1500,
          seed: int = 0) -> int:
    """Head-to-head on a 2-D toy distribution: train DDPM, flow matching, rectified flow (and its reflow),
    consistency models (training, distillation, sCM, ECT), MeanFlow and INDM (against the same diffusion without
    its flow) with the same MLP, budget and seed, and report each one's sliced Wasserstein distance to fresh data
    at several NFEs (and INDM's exact NLL). The entries are the suite of compare/toy2d_suite.py (objectives of
    the registry), trained in the plain loop of training/plain_loop.py. Pure torch: a few minutes on a laptop CPU.

    Args:
        dataset: the 2-D distribution.
        steps: optimiser steps per objective.
        seed: seed of the networks, the data and the noise.
    """
    import torch

    from lit_diffusion.compare.toy2d import ToyConfig, run as run_toy

    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    torch.set_num_threads(1)  # a 2-D MLP is too small to gain from threads; they only contend
    print(f"toy 2-D head-to-head on {dataset}: {steps} steps per objective; "
          "sliced Wasserstein-2 to fresh data (lower is better), sampler@NFE")
    run_toy(ToyConfig(dataset=dataset, steps=steps, seed=seed))
    return 0


def main(argv: list[str]) -> int:
    return run(toy2d, argv, "lit-diffusion toy2d", errors=(ValueError,), error_status=2)
