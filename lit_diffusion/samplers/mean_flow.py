"""MeanFlow sampling (Geng et al. 2025, "Mean Flows for One-step Generative Modeling", eq. 12 and Alg. 2):
with an average-velocity network u(z, r, t), one evaluation jumps from t to r exactly,
    z_r = z_t - (t - r) u(z_t, r, t),
so 1-step generation is x = z_1 - u(z_1, 0, 1) and more steps walk down the time grid.
"""
from __future__ import annotations

import torch

from lit_diffusion.samplers.base import SamplerOutput, check_grid


def sample_mean_flow(path, predict, x: torch.Tensor, grid: torch.Tensor, generator=None,
                     average_velocity=None) -> SamplerOutput:
    """`average_velocity(z, r, t) -> u` with r, t Python floats; nfe = len(grid) - 1. `predict` (the
    instantaneous predictor) is not used: the objective passes its average-velocity network."""
    if average_velocity is None:
        raise ValueError("sampler 'mean_flow' needs an average-velocity network u(z, r, t) "
                         "(average_velocity=...); use it through the MeanFlow objective")
    times = check_grid(grid)
    for t, r in zip(times, times[1:]):
        x = x - (t - r) * average_velocity(x, r, t)
    return SamplerOutput(x, len(times) - 1)
