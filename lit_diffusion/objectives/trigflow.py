"""TrigFlow (Lu & Song 2024, "Simplifying, Stabilizing and Scaling Continuous-Time Consistency Models",
Sec. 2 and eq. 6): x_theta = cos(theta) x0 + sin(theta) z with z ~ N(0, sigma_d^2 I), theta in [0, pi/2].

In this package's time t in [0, 1] (t = 0 data, t = 1 noise) it is the Gaussian path with theta = pi t / 2,
    alpha_t = cos(theta),  sigma_t = sigma_d sin(theta),
so it converts exactly to and from every other path through the noise ratio sigma/alpha = sigma_d tan(theta)
(objectives/teacher.py). The parameterisation reads the network F as
    x0 = cos(theta) x_t - sin(theta) sigma_d F(x_t / sigma_d, t)  =  alpha_t x_t - sigma_t F   (eq. 9),
which is both TrigFlow's diffusion model (sigma_d F = dx/dtheta) and its consistency function (f = x at 0).
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives.parameterisation import Parameterisation
from lit_diffusion.objectives.paths import GaussianPath

HALF_PI = math.pi / 2


class TrigFlowPath(GaussianPath):
    """alpha_t = cos(pi t / 2), sigma_t = sigma_d sin(pi t / 2)."""

    def __init__(self, sigma_data: float = 0.5):
        if sigma_data <= 0:
            raise ValueError(f"TrigFlowPath: sigma_data must be positive, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    def alpha(self, t):
        return torch.cos(HALF_PI * t)

    def sigma(self, t):
        return self.sigma_data * torch.sin(HALF_PI * t)

    def d_alpha(self, t):
        return -HALF_PI * torch.sin(HALF_PI * t)

    def d_sigma(self, t):
        return HALF_PI * self.sigma_data * torch.cos(HALF_PI * t)

    def t_from_noise_ratio(self, ratio, iterations: int = 60):
        """Exact inverse: theta = atan(ratio / sigma_d)."""
        return (torch.atan(ratio / self.sigma_data) / HALF_PI).clamp(0.0, 1.0)


class TrigFlowParameterisation(Parameterisation):
    """F -> x0 = alpha_t x_t - sigma_t F, input x_t / sigma_d (Lu & Song 2024, eq. 9)."""

    name = "trigflow"

    def __init__(self, sigma_data: float = 0.5):
        if sigma_data <= 0:
            raise ValueError(f"TrigFlowParameterisation: sigma_data must be positive, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    def net_input(self, x_t, c: PathCoefficients):
        return x_t / self.sigma_data

    def to_prediction(self, raw, x_t, c):
        x0 = c.alpha * x_t - c.sigma * raw
        return Prediction(x0, (x_t - c.alpha * x0) / c.sigma)

    def target(self, pred, x_t, c):
        return (c.alpha * x_t - pred.x0) / c.sigma

    def error_scale(self, c):
        return 1.0 / c.sigma


def _register() -> None:
    from lit_diffusion.objectives.paths import PATHS
    PATHS.setdefault("trigflow", TrigFlowPath)


_register()
