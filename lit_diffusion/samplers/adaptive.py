"""Adaptive Runge-Kutta 5(4) of Dormand & Prince (1980) with error control, for any ODE dy/dt = f(t, y).

The Butcher tableau below is the published one (Dormand & Prince 1980, Table 2; Hairer, Norsett &
Wanner, "Solving ODEs I", Table II.5.2). The sampler integrates the probability-flow ODE from t_max
to a small t_end and takes one final denoising evaluation x0(x, t_end).
"""
from __future__ import annotations

from typing import Callable

import torch

from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, velocity

_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4))


def dopri5(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float, t1: float,
           rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 10_000) -> tuple[torch.Tensor, int]:
    """Integrate from t0 to t1 (either direction). Returns (y(t1), number of f evaluations)."""
    if rtol <= 0 or atol <= 0:
        raise ValueError(f"dopri5: rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    calls = 0

    def fn(t, y):
        nonlocal calls
        calls += 1
        return f(t, y)

    span = t1 - t0
    direction = 1.0 if span > 0 else -1.0
    t, y = t0, y0
    k1 = fn(t, y)
    # initial step from the first-derivative scale (Hairer et al., sec. II.4, simplified)
    scale = atol + rtol * y.abs()
    d0, d1 = (y / scale).pow(2).mean().sqrt(), (k1 / scale).pow(2).mean().sqrt()
    h = 0.01 * float(d0 / d1) if d0 > 1e-5 and d1 > 1e-5 else 1e-6
    h = min(h, abs(span)) * direction
    for _ in range(max_steps):
        if abs(t1 - t) <= 1e-12 * max(1.0, abs(t1)):
            return y, calls
        if abs(h) > abs(t1 - t):
            h = t1 - t
        ks = [k1]
        for i in range(1, 7):
            y_stage = y + h * sum(a * k for a, k in zip(_A[i], ks) if a != 0.0)
            ks.append(fn(t + _C[i] * h, y_stage))
        y_new = y_stage  # stage 7 is evaluated at the 5th-order solution (FSAL)
        err = h * sum(e * k for e, k in zip(_E, ks) if e != 0.0)
        tol = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        err_norm = float((err / tol).pow(2).mean().sqrt())
        if err_norm <= 1.0:
            t, y, k1 = t + h, y_new, ks[6]
        factor = 10.0 if err_norm == 0.0 else min(10.0, max(0.2, 0.9 * err_norm ** -0.2))
        h = h * factor
    raise RuntimeError(f"dopri5: no convergence from t={t0} to t={t1} within {max_steps} steps (stuck at t={t})")


def sample_adaptive(path, predict, x, grid=None, generator=None, rtol: float = 1e-5, atol: float = 1e-5,
                    t_max: float = 1.0, t_end: float | None = None) -> SamplerOutput:
    """Probability-flow ODE with dopri5 from the grid's first point (or t_max) to t_end, then one final
    denoising evaluation. t_end defaults to the path's t_min, or 1e-4 where that is 0: the solver's
    last stage must not land on sigma = 0, where (x0, eps) are not both determined by x_t."""
    counter = CountingPredictor(predict)
    start = float(grid[0]) if grid is not None else t_max
    if t_end is None:
        t_end = float(path.t_min) if path.t_min > 0 else 1e-4
    if not 0.0 < t_end < start:
        raise ValueError(f"adaptive sampler: need 0 < t_end < t_start, got t_end={t_end}, t_start={start}")
    x, _ = dopri5(lambda t, y: velocity(path, counter(y, t), t), x, start, t_end, rtol=rtol, atol=atol)
    x = counter(x, t_end).x0
    return SamplerOutput(x, counter.calls)
