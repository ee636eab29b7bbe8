"""Euler's method on the probability-flow ODE, in EDM's form (Karras et al. 2022, eq. 4 and sec. 3):
the state x/alpha integrated in the noise level sigma/alpha, where the ODE is d(x/alpha) = eps d(sigma/alpha).

One step from t to s is then x_s = alpha_s x0 + sigma_s eps, the deterministic DDIM update (Song et al.
2021, eq. 13). On the linear paths of flow matching and rectified flow (alpha, sigma linear in t) it is
also exactly Euler's method in t on dx/dt = alpha' x0 + sigma' eps.
"""
from __future__ import annotations

import torch

from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid, path_values


def euler_step(path, predict, x: torch.Tensor, t, s) -> torch.Tensor:
    """One Euler step from t to s (floats, or (B,) tensors for per-sample times); one evaluation."""
    pred = predict(x, t)
    alpha_s, sigma_s = path_values(path, s, x)
    return alpha_s * pred.x0 + sigma_s * pred.eps


def sample_euler(path, predict, x: torch.Tensor, grid: torch.Tensor, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    for t, s in zip(times, times[1:]):
        x = euler_step(path, counter, x, t, s)
    return SamplerOutput(x, counter.calls)
