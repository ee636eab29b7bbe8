"""DDPM ancestral sampling (Ho et al. 2020, eqs. 6-7): draw x_s from the Gaussian posterior q(x_s | x_t, x0)
with x0 replaced by the prediction, for any Gaussian path and grid.

mean = (alpha_{t|s} sigma_s^2 / sigma_t^2) x_t + (alpha_s sigma_{t|s}^2 / sigma_t^2) x0,
var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2  (the "beta tilde" choice).
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid


def ddpm_step(path, predict, x, t: float, s: float, generator=None) -> torch.Tensor:
    ct, cs = PathCoefficients.at_time(path, t), PathCoefficients.at_time(path, s)
    x0 = predict(x, t).x0
    a_ts = ct.alpha / cs.alpha
    var_ts = max(ct.sigma**2 - a_ts**2 * cs.sigma**2, 0.0)
    mean = (a_ts * cs.sigma**2 / ct.sigma**2) * x + (cs.alpha * var_ts / ct.sigma**2) * x0
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return mean + math.sqrt(var_ts) * cs.sigma / ct.sigma * z


def sample_ddpm(path, predict, x, grid, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    for t, s in zip(times, times[1:]):
        x = ddpm_step(path, counter, x, t, s, generator=generator)
    return SamplerOutput(x, counter.calls)
