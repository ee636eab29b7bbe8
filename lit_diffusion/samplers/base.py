"""What every sampler shares: the predictor contract, exact NFE counting, and helpers over path coefficients.

A predictor is any callable `predict(x, t) -> Prediction(x0, eps)` with t a Python float in [0, 1]
shared by the whole batch. Samplers never see a network or an objective: the objective builds the
predictor (parameterisation, guidance) and the sampler only integrates.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from lit_diffusion.contract import PathCoefficients, Prediction  # re-exported: the math contract


Predictor = Callable[[torch.Tensor, float], Prediction]


class SamplerOutput(NamedTuple):
    x0: torch.Tensor  # the generated samples
    nfe: int  # predictor evaluations actually made


class CountingPredictor:
    """Wraps a predictor and counts its calls: the sampler's NFE is this count, never a formula."""

    def __init__(self, predict: Predictor):
        self.predict = predict
        self.calls = 0

    def __call__(self, x: torch.Tensor, t) -> Prediction:
        self.calls += 1
        return self.predict(x, t if isinstance(t, torch.Tensor) else float(t))


def per_sample(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (B,) tensor of times reshaped to broadcast against x (B, ...)."""
    return t.to(device=x.device, dtype=x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))


def velocity(path, pred: Prediction, t) -> torch.Tensor:
    """dx_t/dt = alpha' x0 + sigma' eps along the probability-flow ODE; t a float or a (B,) tensor."""
    if isinstance(t, torch.Tensor):
        tt = per_sample(t, pred.x0)
        return path.d_alpha(tt) * pred.x0 + path.d_sigma(tt) * pred.eps
    c = PathCoefficients.at_time(path, t)
    return c.d_alpha * pred.x0 + c.d_sigma * pred.eps


def path_values(path, t, x: torch.Tensor):
    """(alpha_t, sigma_t): floats for a float t, tensors broadcasting against x for a (B,) tensor t."""
    if isinstance(t, torch.Tensor):
        tt = per_sample(t.double(), x).double()
        return path.alpha(tt).to(x.dtype), path.sigma(tt).to(x.dtype)
    c = PathCoefficients.at_time(path, t)
    return c.alpha, c.sigma


def check_grid(grid: torch.Tensor) -> list[float]:
    values = [float(v) for v in grid]
    if len(values) < 2:
        raise ValueError(f"a time grid needs at least 2 points, got {len(values)}")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError(f"a time grid must decrease strictly from noise to data, got {values}")
    if values[0] > 1.0 or values[-1] < 0.0:
        raise ValueError(f"a time grid must lie in [0, 1], got [{values[-1]}, {values[0]}]")
    return values
