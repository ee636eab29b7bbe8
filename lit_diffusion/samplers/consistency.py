"""Consistency-model sampling (Song et al. 2023, Alg. 1): jump to x0 with the consistency function, then
optionally re-noise to a smaller time and jump again; one predictor evaluation per time.

Re-noising on a general path: x_t = alpha_t x0 + sqrt(sigma_t^2 - (alpha_t r_0)^2) z, with r_0 the
path's noise ratio at t = 0 (sigma_min for the EDM path), so that t = 0 carries no extra noise.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid


def sample_consistency(path, predict, x, grid, generator=None) -> SamplerOutput:
    """Evaluate at every grid time except the final 0: nfe = len(grid) - 1."""
    counter = CountingPredictor(predict)
    times = check_grid(grid)[:-1]
    c0 = PathCoefficients.at_time(path, 0.0)
    r0 = c0.sigma / c0.alpha
    x0 = counter(x, times[0]).x0
    for t in times[1:]:
        c = PathCoefficients.at_time(path, t)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x = c.alpha * x0 + math.sqrt(max(c.sigma**2 - (c.alpha * r0) ** 2, 0.0)) * z
        x0 = counter(x, t).x0
    return SamplerOutput(x0, counter.calls)
