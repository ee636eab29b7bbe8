"""DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12), on any Gaussian path.

x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z, with c^2 = eta^2 sigma_{t|s}^2 sigma_s^2 / sigma_t^2,
alpha_{t|s} = alpha_t / alpha_s and sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2.
eta = 0 is the deterministic DDIM (first-order in log-SNR); eta = 1 is DDPM's ancestral sampler.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid, path_values


def ddim_step(path, predict, x, t: float, s: float, eta: float = 0.0, generator=None) -> torch.Tensor:
    pred = predict(x, t)
    if eta == 0.0:  # t and s floats, or (B,) tensors (a distillation teacher's per-sample steps)
        alpha_s, sigma_s = path_values(path, s, x)
        return alpha_s * pred.x0 + sigma_s * pred.eps
    ct, cs = PathCoefficients.at_time(path, t), PathCoefficients.at_time(path, s)
    a_ts = ct.alpha / cs.alpha
    var_ts = max(ct.sigma**2 - a_ts**2 * cs.sigma**2, 0.0)
    c = eta * math.sqrt(var_ts) * cs.sigma / ct.sigma
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return cs.alpha * pred.x0 + math.sqrt(max(cs.sigma**2 - c**2, 0.0)) * pred.eps + c * z


def sample_ddim(path, predict, x, grid, generator=None, eta: float = 0.0) -> SamplerOutput:
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"DDIM: eta must lie in [0, 1], got {eta}")
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    for t, s in zip(times, times[1:]):
        x = ddim_step(path, counter, x, t, s, eta=eta, generator=generator)
    return SamplerOutput(x, counter.calls)
