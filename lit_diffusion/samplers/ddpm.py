"""DDPM ancestral sampling (Ho et al. 2020, eqs. 6-7): draw x_s from the Gaussian posterior q(x_s | x_t, x0)
with x0 replaced by the prediction, for any Gaussian path and grid.

mean = (alpha_{t|s} sigma_s^2 / sigma_t^2) x_t + (alpha_s sigma_{t|s}^2 / sigma_t^2) x0,
var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2  (the "beta tilde" choice).

A prediction with a `var_frac` (contract.VariancePrediction: Improved DDPM's learned variance, Nichol &
Dhariwal 2021, eq. 15) sets log var = frac log sigma_{t|s}^2 + (1 - frac) log beta_tilde instead, with the
betas of the step actually taken (t -> s), i.e. respaced on a strided grid (their sec. 4). On a VP path
sigma_{t|s}^2 = 1 - alpha_bar_t / alpha_bar_s is the respaced beta. The final step to s = 0 adds no noise.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid


def ddpm_step(path, predict, x, t: float, s: float, generator=None) -> torch.Tensor:
    ct, cs = PathCoefficients.at_time(path, t), PathCoefficients.at_time(path, s)
    pred = predict(x, t)
    x0 = pred.x0
    a_ts = ct.alpha / cs.alpha
    var_ts = max(ct.sigma**2 - a_ts**2 * cs.sigma**2, 0.0)
    mean = (a_ts * cs.sigma**2 / ct.sigma**2) * x + (cs.alpha * var_ts / ct.sigma**2) * x0
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    frac = getattr(pred, "var_frac", None)
    if frac is None or cs.sigma == 0.0 or var_ts == 0.0:
        return mean + math.sqrt(var_ts) * cs.sigma / ct.sigma * z
    return mean + step_std(frac, var_ts, var_ts * cs.sigma**2 / ct.sigma**2) * z


def step_std(frac: torch.Tensor, beta: float, beta_tilde: float) -> torch.Tensor:
    """exp(0.5 (frac log beta + (1 - frac) log beta_tilde)): the learned standard deviation of one step."""
    return torch.exp(0.5 * (frac * math.log(beta) + (1.0 - frac) * math.log(beta_tilde)))


def sample_ddpm(path, predict, x, grid, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    for t, s in zip(times, times[1:]):
        x = ddpm_step(path, counter, x, t, s, generator=generator)
    return SamplerOutput(x, counter.calls)
