"""Heun's second-order method in EDM's form (Karras et al. 2022, Alg. 1 with eq. 4): on the state x/alpha
against the noise level sigma/alpha, with the trapezoidal average of the two noise estimates:

x_s = alpha_s [x_t / alpha_t + (sigma_s/alpha_s - sigma_t/alpha_t) (eps_t + eps_s) / 2].

The last step is an Euler step, as in EDM, and so is any step that starts at alpha_t = 0 (pure noise
on linear paths) or ends at sigma_s = 0, where the correction is undefined. So N steps cost
2N - 1 evaluations (2N - 2 on paths with alpha_1 = 0); the reported NFE is always the count made.
"""
from __future__ import annotations

import torch

from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid, path_values
from lit_diffusion.samplers.euler import euler_step


def heun_step(path, predict, x: torch.Tensor, t, s) -> torch.Tensor:
    """One Heun step from t to s (floats, or (B,) tensors for per-sample times); two evaluations,
    or one where the step has to be an Euler step."""
    alpha_t, sigma_t = path_values(path, t, x)
    alpha_s, sigma_s = path_values(path, s, x)
    pred_t = predict(x, t)
    x_euler = alpha_s * pred_t.x0 + sigma_s * pred_t.eps
    euler_only = (alpha_t == 0) | (sigma_s == 0) if isinstance(alpha_t, torch.Tensor) else (alpha_t == 0 or sigma_s == 0)
    if euler_only is True or (isinstance(euler_only, torch.Tensor) and bool(euler_only.all())):
        return x_euler
    eps_s = predict(x_euler, s).eps
    if isinstance(alpha_t, torch.Tensor):
        alpha_t = torch.where(alpha_t == 0, torch.ones_like(alpha_t), alpha_t)  # masked out below
    heun = alpha_s * (x / alpha_t + (sigma_s / alpha_s - sigma_t / alpha_t) * 0.5 * (pred_t.eps + eps_s))
    return torch.where(euler_only, x_euler, heun) if isinstance(euler_only, torch.Tensor) else heun


def sample_heun(path, predict, x: torch.Tensor, grid: torch.Tensor, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    last = len(times) - 2
    for i, (t, s) in enumerate(zip(times, times[1:])):
        x = heun_step(path, counter, x, t, s) if i < last else euler_step(path, counter, x, t, s)
    return SamplerOutput(x, counter.calls)


def heun_steps_for_nfe(nfe: int) -> int:
    return (nfe + 1) // 2
