"""Likelihood weighting of the score-matching loss (Song et al. 2021, "Maximum Likelihood Training of
Score-Based Diffusion Models", Theorem 1: lambda(t) = g(t)^2 makes the loss a bound on the NLL), and the
importance sampling of t that removes its variance (ibid. sec. 5; used by INDM, Kim et al. 2022).

On a Gaussian path g^2 ||s - grad log p_0t||^2 = -dSNR/dt ||x0_hat - x0||^2 = -dlambda/dt ||eps_hat - eps||^2
with SNR = alpha^2 / sigma^2 and lambda = log SNR (Kingma et al. 2021, VDM, sec. 4.1 gives the same
continuous-time loss). So sampling t with lambda_t uniform makes the eps-space weight constant.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.objectives.time_samplers import TimeSampler
from lit_diffusion.objectives.weightings import Weighting


def d_log_snr(path, t: torch.Tensor) -> torch.Tensor:
    """dlambda/dt = 2 (alpha'/alpha - sigma'/sigma), negative on every path here."""
    return 2.0 * (path.d_alpha(t) / path.alpha(t) - path.d_sigma(t) / path.sigma(t))


class LikelihoodWeighting(Weighting):
    """x0-space weight -dSNR/dt = SNR * (-dlambda/dt): g(t)^2 on the score error; for eps prediction on the
    VP SDE this is beta(t) / sigma_t^2."""

    def __call__(self, c: PathCoefficients, parameterisation) -> torch.Tensor:
        snr = (c.alpha / c.sigma) ** 2
        dlam = 2.0 * (c.d_alpha / c.alpha - c.d_sigma / c.sigma)
        w = -snr * dlam / parameterisation.error_scale(c) ** 2
        return w.reshape(w.shape[0])


class LogSNRUniformTime(TimeSampler):
    """t with lambda_t uniform on [lambda(t_max), lambda(t_min)]: density p(t) = -lambda'(t) / (lambda(t_min) -
    lambda(t_max)), proportional to the likelihood weight in eps space (importance sampling of t)."""

    def __init__(self, t_min: float = 1e-5, t_max: float = 1.0):
        if not 0.0 < t_min < t_max <= 1.0:
            raise ValueError(f"LogSNRUniformTime: need 0 < t_min < t_max <= 1, got {t_min}, {t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)

    def _range(self, path) -> tuple[float, float]:
        ends = path.log_snr(torch.tensor([self.t_max, self.t_min], dtype=torch.float64))
        return float(ends[0]), float(ends[1])

    def sample(self, batch_size, path, generator=None, device=None):
        return self.quantile(torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64), path)

    def quantile(self, u: torch.Tensor, path) -> torch.Tensor:
        """The t whose CDF is u in [0, 1] (for stratified draws)."""
        lo, hi = self._range(path)
        t = path.t_from_noise_ratio(torch.exp(-0.5 * (hi - u.double() * (hi - lo))))
        return t.clamp(self.t_min, self.t_max).float()

    def density(self, t: torch.Tensor, path) -> torch.Tensor:
        lo, hi = self._range(path)
        return (-d_log_snr(path, t.double()) / (hi - lo)).to(t.dtype)


class UniformTimeDensity(TimeSampler):
    """t ~ U[t_min, t_max] with its density 1 / (t_max - t_min) (the plain estimator of the time integral)."""

    def __init__(self, t_min: float = 1e-5, t_max: float = 1.0):
        if not 0.0 <= t_min < t_max <= 1.0:
            raise ValueError(f"UniformTimeDensity: need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)

    def sample(self, batch_size, path, generator=None, device=None):
        return self.quantile(torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64), path)

    def quantile(self, u: torch.Tensor, path) -> torch.Tensor:
        return (self.t_min + (self.t_max - self.t_min) * u.double()).float()

    def density(self, t: torch.Tensor, path) -> torch.Tensor:
        return torch.full_like(t, 1.0 / (self.t_max - self.t_min))
