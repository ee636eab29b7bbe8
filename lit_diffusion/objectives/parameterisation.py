"""Parameterisations: how the raw network output F becomes a prediction, and what F is trained to hit.

A parameterisation knows (1) how to scale the network input, (2) how to turn F into (x0, eps), (3) the
regression target for F given (x0, eps), and (4) how an error in F relates to an error in x0, so that
loss weightings defined in x0 space can be expressed in F's space.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives.conversions import from_prediction, to_prediction, x0_sensitivity
from lit_diffusion.objectives.registry import build


class Parameterisation:
    name = "base"

    def net_input(self, x_t: torch.Tensor, c: PathCoefficients) -> torch.Tensor:
        return x_t

    def to_prediction(self, raw: torch.Tensor, x_t: torch.Tensor, c: PathCoefficients) -> Prediction:
        raise NotImplementedError

    def target(self, pred: Prediction, x_t: torch.Tensor, c: PathCoefficients) -> torch.Tensor:
        raise NotImplementedError

    def error_scale(self, c: PathCoefficients) -> torch.Tensor:
        """Factor k with (F - F_target) = k (x0_hat - x0) at fixed x_t."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


class QuantityParameterisation(Parameterisation):
    """The network predicts one of x0, eps, v or velocity directly (no input scaling)."""

    KINDS = ("x0", "eps", "v", "velocity")

    def __init__(self, kind: str):
        if kind not in self.KINDS:
            raise ValueError(f"unknown parameterisation {kind!r}; known: {list(PARAMETERISATIONS)}")
        self.kind = kind
        self.name = kind

    def to_prediction(self, raw, x_t, c):
        return to_prediction(self.kind, raw, x_t, c)

    def target(self, pred, x_t, c):
        return from_prediction(self.kind, pred, c)

    def error_scale(self, c):
        return x0_sensitivity(self.kind, c)


class EDMPreconditioning(Parameterisation):
    """Karras et al. 2022 (EDM), Table 1, on any Gaussian path.

    With the EDM noise level sigma_e = sigma_t / alpha_t and x_hat = x_t / alpha_t:
    D(x_hat) = c_skip x_hat + c_out F(c_in x_hat, t). The network sees t (DESIGN §3) rather than
    c_noise = log(sigma_e) / 4; both are monotone in the noise level, so nothing is lost.
    """

    name = "edm"

    def __init__(self, sigma_data: float = 0.5):
        if sigma_data <= 0:
            raise ValueError(f"EDMPreconditioning: sigma_data must be positive, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    @staticmethod
    def sigma_edm(c: PathCoefficients) -> torch.Tensor:
        return c.sigma / c.alpha

    def c_skip(self, c):
        return self.sigma_data**2 / (self.sigma_edm(c) ** 2 + self.sigma_data**2)

    def c_out(self, c):
        s = self.sigma_edm(c)
        return s * self.sigma_data / torch.sqrt(s**2 + self.sigma_data**2)

    def c_in(self, c):
        return 1.0 / torch.sqrt(self.sigma_edm(c) ** 2 + self.sigma_data**2)

    def c_noise(self, c):
        return torch.log(self.sigma_edm(c)) / 4

    def net_input(self, x_t, c):
        return self.c_in(c) * x_t / c.alpha

    def to_prediction(self, raw, x_t, c):
        x0 = self.c_skip(c) * x_t / c.alpha + self.c_out(c) * raw
        return Prediction(x0, (x_t - c.alpha * x0) / c.sigma)

    def target(self, pred, x_t, c):
        return (pred.x0 - self.c_skip(c) * x_t / c.alpha) / self.c_out(c)

    def error_scale(self, c):
        return 1.0 / self.c_out(c)


class ConsistencyPreconditioning(EDMPreconditioning):
    """Consistency-model skip scalings (Song et al. 2023, appendix C; Song & Dhariwal 2023, sec. 3):

    c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2),
    c_out = sigma_data (sigma - sigma_min) / sqrt(sigma^2 + sigma_data^2),
    with sigma_min the path's noise level at t = 0, evaluated by the same formula as sigma, so that
    c_skip = 1 and c_out = 0 exactly at t = 0: f(x, t=0) = x by construction.
    """

    name = "consistency"

    def _sigma_min(self, c):
        return c.path.noise_ratio(torch.zeros_like(c.t)).reshape(c.alpha.shape)

    def c_skip(self, c):
        gap = self.sigma_edm(c) - self._sigma_min(c)
        return self.sigma_data**2 / (gap**2 + self.sigma_data**2)

    def c_out(self, c):
        s = self.sigma_edm(c)
        return self.sigma_data * (s - self._sigma_min(c)) / torch.sqrt(s**2 + self.sigma_data**2)


PARAMETERISATIONS = {
    "x0": lambda: QuantityParameterisation("x0"),
    "eps": lambda: QuantityParameterisation("eps"),
    "v": lambda: QuantityParameterisation("v"),
    "velocity": lambda: QuantityParameterisation("velocity"),
    "edm": EDMPreconditioning,
    "consistency": ConsistencyPreconditioning,
}


def make_parameterisation(name: str, **kwargs) -> Parameterisation:
    return build("parameterisation", PARAMETERISATIONS, name, **kwargs)
