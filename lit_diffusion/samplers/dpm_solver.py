"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2): a second-order multistep solver of the
probability-flow ODE in log-SNR time lambda = log(alpha / sigma), using the data prediction.

x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D,  h = lambda_s - lambda_t,
D = x0_t for the first and last steps, else (1 + 1/(2r)) x0_t - 1/(2r) x0_prev with r = h_prev / h.
The last step is first order ("lower order final"), which also handles sigma_0 = 0 (h = inf) exactly.
"""
from __future__ import annotations

import math

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid


def _log_snr_half(c: PathCoefficients) -> float:
    if c.alpha <= 0.0:
        return -math.inf
    if c.sigma <= 0.0:
        return math.inf
    return math.log(c.alpha) - math.log(c.sigma)


def sample_dpm_solver_2m(path, predict, x, grid, generator=None) -> SamplerOutput:
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    x0_prev, h_prev = None, None
    last = len(times) - 2
    for i, (t, s) in enumerate(zip(times, times[1:])):
        ct, cs = PathCoefficients.at_time(path, t), PathCoefficients.at_time(path, s)
        x0 = counter(x, t).x0
        h = _log_snr_half(cs) - _log_snr_half(ct)
        if x0_prev is None or i == last or math.isinf(h_prev):
            d = x0
        else:
            half_inv_r = h / (2.0 * h_prev)
            d = (1.0 + half_inv_r) * x0 - half_inv_r * x0_prev
        ratio = cs.sigma / ct.sigma
        x = ratio * x - cs.alpha * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return SamplerOutput(x, counter.calls)
