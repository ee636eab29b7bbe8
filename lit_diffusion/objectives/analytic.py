"""Closed-form Gaussian mixtures: exact samples, densities and posterior E[x0 | x_t] on any Gaussian path.

For x0 ~ sum_k pi_k N(mu_k, S_k) and x_t = alpha x0 + sigma eps, component k gives
x_t | k ~ N(alpha mu_k, alpha^2 S_k + sigma^2 I) and, with C_k = alpha^2 S_k + sigma^2 I,
E[x0 | x_t, k] = mu_k + alpha S_k C_k^{-1} (x_t - alpha mu_k),  Cov[x0 | x_t, k] = S_k - alpha^2 S_k C_k^{-1} S_k
(Gaussian conditioning, e.g. Bishop 2006, eq. 2.116). These serve as oracle networks in tests and as
toy data with a known density.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.objectives.conversions import PathCoefficients
from lit_diffusion.samplers.base import Prediction


class GaussianMixture:
    """means (K, D), covariances (K, D, D), weights (K,) summing to one; computations in float64."""

    def __init__(self, means, covariances, weights=None):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = torch.as_tensor(covariances, dtype=torch.float64)
        k, d = self.means.shape
        if self.covs.shape != (k, d, d):
            raise ValueError(f"GaussianMixture: covariances must have shape ({k}, {d}, {d}), got {tuple(self.covs.shape)}")
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-9:
            raise ValueError(f"GaussianMixture: weights must be {k} non-negative numbers summing to 1, got {w.tolist()}")
        self.weights = w
        self.dim = d

    @classmethod
    def isotropic(cls, means, std: float, weights=None) -> "GaussianMixture":
        means = torch.as_tensor(means, dtype=torch.float64)
        eye = torch.eye(means.shape[1], dtype=torch.float64)
        return cls(means, (std**2 * eye).expand(means.shape[0], -1, -1).clone(), weights)

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def covariance(self) -> torch.Tensor:
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - m[:, None] * m[None, :]

    def sample(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (n, D) float64, component labels (n,))."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[labels] + (chol[labels] @ z[:, :, None])[:, :, 0], labels

    def _component_log_probs(self, x, means, covs):
        diff = x[:, None, :] - means[None]  # (B, K, D)
        chol = torch.linalg.cholesky(covs)  # (K, D, D) or (B, K, D, D)
        sol = torch.linalg.solve_triangular(chol.expand(diff.shape[:2] + chol.shape[-2:]), diff[..., None], upper=False)[..., 0]
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return -0.5 * (sol.pow(2).sum(-1) + logdet + self.dim * math.log(2 * math.pi)) + torch.log(self.weights)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._component_log_probs(x.double(), self.means, self.covs), dim=1)

    def posterior(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E[x0 | x_t] (B, D) and Cov[x0 | x_t] (B, D, D); alpha, sigma of shape (B,)."""
        x = x_t.double().reshape(x_t.shape[0], self.dim)
        a = alpha.double().reshape(-1, 1, 1, 1)
        s = sigma.double().reshape(-1, 1, 1, 1)
        eye = torch.eye(self.dim, dtype=torch.float64)
        covs = self.covs[None]  # (1, K, D, D)
        c = a**2 * covs + s**2 * eye  # (B, K, D, D)
        logp = self._component_log_probs(x, a[:, :, :, 0] * self.means[None], c)  # (B, K)
        resp = torch.softmax(logp, dim=1)
        gain = a * covs @ torch.linalg.inv(c)  # alpha S C^{-1}
        resid = x[:, None, :] - a[:, :, :, 0] * self.means[None]
        m_k = self.means[None] + (gain @ resid[..., None])[..., 0]  # (B, K, D)
        cov_k = covs - a * gain @ covs
        mean = (resp[..., None] * m_k).sum(1)
        second = (resp[..., None, None] * (cov_k + m_k[..., :, None] * m_k[..., None, :])).sum(1)
        return mean, second - mean[:, :, None] * mean[:, None, :]


def oracle_network(mixture: GaussianMixture, objective):
    """A 'network' whose output, read through `objective`'s parameterisation, is the exact posterior
    mean: the optimum of every regression objective on this path."""

    def net(x_in: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        c = PathCoefficients.at(objective.path, t, x_in)
        x_t = x_in / objective.parameterisation.net_input(torch.ones_like(x_in), c)
        x0, _ = mixture.posterior(x_t, c.alpha.flatten(), c.sigma.flatten())
        x0 = x0.to(x_in.dtype).reshape(x_in.shape)
        return objective.parameterisation.target(Prediction(x0, (x_t - c.alpha * x0) / c.sigma), x_t, c)

    return net
