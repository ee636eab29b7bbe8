"""The math contract shared by objectives and samplers (DESIGN.md §2); imports only torch.

One time convention: t in [0, 1], t = 0 is data, t = 1 is noise, and a Gaussian path is
x_t = alpha_t x0 + sigma_t eps with eps ~ N(0, I). A path object provides alpha(t), sigma(t),
d_alpha(t), d_sigma(t) as functions of a time tensor.

- `Prediction(x0, eps)`: a denoiser's answer at (x_t, t); every other quantity (v, velocity, score)
  is a function of this pair (see objectives/conversions.py).
- `PathCoefficients(t, alpha, sigma, d_alpha, d_sigma)`: a path evaluated at t, in one of two forms:
  `at(path, t, x)` gives tensors shaped to broadcast against a batch x (B, 1, 1, ...) in x's dtype
  (what objectives use); `at_time(path, t)` gives Python floats evaluated in float64 at one time
  shared by the whole batch (what the per-step samplers use).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

import torch

Scalar = Union[float, torch.Tensor]


class Prediction(NamedTuple):
    """A denoiser's answer at (x_t, t): the clean-sample and noise estimates, x_t = alpha x0 + sigma eps."""

    x0: torch.Tensor
    eps: torch.Tensor


@dataclass
class PathCoefficients:
    """alpha_t, sigma_t and their time derivatives at t: tensors (B, 1, 1, ...) or Python floats."""

    t: Scalar  # (B,) tensor for the tensor form, a float for the float form
    alpha: Scalar
    sigma: Scalar
    d_alpha: Scalar
    d_sigma: Scalar
    path: object = None

    @classmethod
    def at(cls, path, t: torch.Tensor, x: torch.Tensor) -> "PathCoefficients":
        """Evaluate `path` at t ((B,) or scalar) in x's dtype, reshaped to broadcast over x's shape."""
        t = t.to(device=x.device, dtype=x.dtype)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
        shape = (-1,) + (1,) * (x.ndim - 1)
        values = (path.alpha(t), path.sigma(t), path.d_alpha(t), path.d_sigma(t))
        return cls(t, *(v.reshape(shape) for v in values), path=path)

    @classmethod
    def at_time(cls, path, t: float) -> "PathCoefficients":
        """Evaluate `path` at one time t as Python floats, computed in float64."""
        tt = torch.tensor([float(t)], dtype=torch.float64)
        values = (float(f(tt)[0]) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma))
        return cls(float(t), *values, path=path)


__all__ = ["PathCoefficients", "Prediction"]
