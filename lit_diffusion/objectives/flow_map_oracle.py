"""The exact probability-flow ODE flow map of diagonal-Gaussian data, as oracle networks for the few-step
objectives (MeanFlow, sCM, consistency tuning).

For x0 ~ N(mu, diag(s^2)) on a Gaussian path, x_t ~ N(alpha_t mu, diag(sd_t^2)) with
sd_t^2 = alpha_t^2 s^2 + sigma_t^2, and the PF-ODE moves every coordinate so that its standardised value
(x_t - alpha_t mu) / sd_t is kept: the flow map from t to r is
    Phi_{t->r}(x) = alpha_r mu + (sd_r / sd_t) (x - alpha_t mu).
Hence the average velocity u(z, r, t) = (z - Phi_{t->r}(z)) / (t - r) (Geng et al. 2025, eq. 3), the
instantaneous velocity at r = t, and the consistency function f(x, t) = Phi_{t->0}(x) are all closed forms.

For a Gaussian mixture (`MixtureFlowMap`) the PF-ODE velocity is still closed form (the posterior mean,
objectives/analytic.py) but the flow map is not: it comes from the adaptive Dormand-Prince solver
(samplers/adaptive.py) at a tight tolerance, and u and f follow from it as above.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.adaptive import dopri5


class GaussianFlowMap:
    """mean (D,), std (D,) of diagonal-Gaussian data; `path` a Gaussian path. Everything in x's dtype."""

    def __init__(self, mean, std, path):
        self.mean, self.std, self.path = torch.as_tensor(mean), torch.as_tensor(std), path

    def _coef(self, t, x):
        c = PathCoefficients.at(self.path, t, x)
        mu, s = self.mean.to(x), self.std.to(x)
        sd = torch.sqrt(c.alpha**2 * s**2 + c.sigma**2)
        d_sd = (c.alpha * c.d_alpha * s**2 + c.sigma * c.d_sigma) / sd
        return c, mu, sd, d_sd

    def flow(self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Phi_{t->r}(x): x (B, D), t and r (B,)."""
        ct, mu, sd_t, _ = self._coef(t, x)
        cr, _, sd_r, _ = self._coef(r, x)
        return cr.alpha * mu + sd_r / sd_t * (x - ct.alpha * mu)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """dx/dt of the PF-ODE at (x, t)."""
        c, mu, sd, d_sd = self._coef(t, x)
        return c.d_alpha * mu + d_sd / sd * (x - c.alpha * mu)

    def average_velocity(self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """u(z, r, t), the velocity itself where r = t."""
        gap = (t - r).to(z).reshape(-1, 1)
        same = gap.abs() < 1e-6
        u = (z - self.flow(z, t, r)) / torch.where(same, torch.ones_like(gap), gap)
        return torch.where(same, self.velocity(z, t), u)

    def mean_flow_net(self):
        """A MeanFlow 'network' net(z, t, cond=None, r=None) -> u(z, r, t) (r=None: the velocity)."""
        def net(z, t, cond=None, r=None):
            t = t.expand(z.shape[0]) if t.ndim == 0 else t
            return self.velocity(z, t) if r is None else self.average_velocity(z, r, t)
        return net

    def trigflow_net(self, sigma_data: float):
        """The exact sCM network F(x_t / sigma_d, t) on TrigFlow (self.path must be a TrigFlowPath):
        f(x_t, t) = Phi_{t->0}(x_t) = alpha_t x_t - sigma_t F."""
        def net(x_in, t, cond=None, r=None):
            t = t.expand(x_in.shape[0]) if t.ndim == 0 else t
            x_t = sigma_data * x_in
            c = PathCoefficients.at(self.path, t, x_t)
            return (c.alpha * x_t - self.flow(x_t, t, torch.zeros_like(t))) / c.sigma
        return net


class MixtureFlowMap(GaussianFlowMap):
    """The PF-ODE flow map of a `GaussianMixture` on a Gaussian `path`, integrated with dopri5 at rtol/atol.

    One solver run moves every sample over its own interval: with tau(s) = t + s (r - t), s in [0, 1],
    dy/ds = (r - t) v(y, tau(s)). At time 0 (sigma = 0) eps, hence v, is undetermined, so the solver stops at
    `t_floor` and takes one Euler step to 0 (exact up to O(t_floor^2), below the solver's tolerance).
    """

    def __init__(self, mixture, path, rtol: float = 1e-8, atol: float = 1e-8, t_floor: float = 1e-5):
        self.mixture, self.path = mixture, path
        self.rtol, self.atol, self.t_floor = rtol, atol, t_floor

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = PathCoefficients.at(self.path, t, x)
        x0 = self.mixture.posterior_mean(x, c.alpha.flatten(), c.sigma.flatten()).to(x)
        return c.d_alpha * x0 + c.d_sigma * (x - c.alpha * x0) / c.sigma

    def flow(self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        t, r = t.to(x), r.to(x)
        end = r.clamp_min(self.t_floor)
        span = (end - t).reshape(-1, 1)
        y, _ = dopri5(lambda s, y: span * self.velocity(y, t + s * (end - t)), x, 0.0, 1.0,
                      rtol=self.rtol, atol=self.atol)
        last = (r - end).reshape(-1, 1)  # 0 unless r < t_floor
        return y + last * self.velocity(y, end)
