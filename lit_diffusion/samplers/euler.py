"""Euler's method on the probability-flow ODE dx/dt = alpha' x0 + sigma' eps, in the path's own time."""
from __future__ import annotations

import torch

from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid, step_size, velocity


def euler_step(path, predict, x: torch.Tensor, t, s) -> torch.Tensor:
    """One Euler step from t to s (floats, or (B,) tensors for per-sample times); one evaluation."""
    return x + step_size(t, s, x) * velocity(path, predict(x, t), t)


def sample_euler(path, predict, x: torch.Tensor, grid: torch.Tensor, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    for t, s in zip(times, times[1:]):
        x = euler_step(path, counter, x, t, s)
    return SamplerOutput(x, counter.calls)
