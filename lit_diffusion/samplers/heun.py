"""Heun's second-order method (Karras et al. 2022, Alg. 1) on dx/dt = alpha' x0 + sigma' eps.

As in EDM, the last step (to t = 0, where sigma may vanish) is a plain Euler step, so N steps cost
2N - 1 evaluations; a requested NFE maps to the largest odd count not above it.
"""
from __future__ import annotations

import torch

from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid, step_size, velocity


def heun_step(path, predict, x: torch.Tensor, t, s) -> torch.Tensor:
    """One Heun step from t to s (floats, or (B,) tensors for per-sample times); two evaluations."""
    h = step_size(t, s, x)
    d_t = velocity(path, predict(x, t), t)
    d_s = velocity(path, predict(x + h * d_t, s), s)
    return x + 0.5 * h * (d_t + d_s)


def sample_heun(path, predict, x: torch.Tensor, grid: torch.Tensor, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    last = len(times) - 2
    for i, (t, s) in enumerate(zip(times, times[1:])):
        if i < last:
            x = heun_step(path, counter, x, t, s)
        else:
            x = x + (s - t) * velocity(path, counter(x, t), t)
    return SamplerOutput(x, counter.calls)


def heun_steps_for_nfe(nfe: int) -> int:
    return (nfe + 1) // 2
