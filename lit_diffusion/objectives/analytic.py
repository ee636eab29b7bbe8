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

from lit_diffusion.contract import PathCoefficients, Prediction


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

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log density of x (B, D) under the mixture."""
        return torch.logsumexp(self._log_joint(x.double(), torch.ones(x.shape[0], dtype=torch.float64),
                                               torch.zeros(x.shape[0], dtype=torch.float64))[0], dim=1)

    def _log_joint(self, x, a, s):
        """log pi_k N(x; a mu_k, a^2 S_k + s^2 I) (B, K), plus the projections and eigenvalues used by
        `posterior`. S_k = U_k diag(l_k) U_k^T is diagonalised once, so C_k is diagonal in U_k's basis
        and no per-sample matrix is ever inverted."""
        lam, basis = self._eig
        a, s = a[:, None, None], s[:, None, None]
        resid = x[:, None, :] - a * self.means[None]  # (B, K, D)
        y = torch.einsum("kdj,bkd->bkj", basis, resid)  # coordinates in each component's eigenbasis
        var = a**2 * lam[None] + s**2  # (B, K, D): eigenvalues of C_k
        logp = -0.5 * ((y**2 / var).sum(-1) + torch.log(var).sum(-1) + self.dim * math.log(2 * math.pi))
        return logp + torch.log(self.weights), y, var

    @property
    def _eig(self):
        if not hasattr(self, "_eig_cache"):
            self._eig_cache = torch.linalg.eigh(self.covs)  # (K, D), (K, D, D)
        return self._eig_cache

    def posterior(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E[x0 | x_t] (B, D) and Cov[x0 | x_t] (B, D, D); alpha, sigma of shape (B,)."""
        x = x_t.double().reshape(x_t.shape[0], self.dim)
        a, s = alpha.double().reshape(-1), sigma.double().reshape(-1)
        logp, y, var = self._log_joint(x, a, s)
        resp = torch.softmax(logp, dim=1)  # (B, K)
        lam, basis = self._eig
        a3 = a[:, None, None]
        # mean_k = mu_k + U (a l / var) y ;  cov_k = U diag(l s^2 / var) U^T
        m_k = self.means[None] + torch.einsum("kdj,bkj->bkd", basis, a3 * lam[None] / var * y)
        cov_diag = lam[None] * s[:, None, None] ** 2 / var  # (B, K, D)
        cov_k = torch.einsum("kdj,bkj,kej->bkde", basis, cov_diag, basis)
        mean = (resp[..., None] * m_k).sum(1)
        second = (resp[..., None, None] * (cov_k + m_k[..., :, None] * m_k[..., None, :])).sum(1)
        return mean, second - mean[:, :, None] * mean[:, None, :]

    def posterior_mean(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t] (B, D) alone (cheaper than `posterior`)."""
        x = x_t.double().reshape(x_t.shape[0], self.dim)
        a, s = alpha.double().reshape(-1), sigma.double().reshape(-1)
        logp, y, var = self._log_joint(x, a, s)
        lam, basis = self._eig
        m_k = self.means[None] + torch.einsum("kdj,bkj->bkd", basis, a[:, None, None] * lam[None] / var * y)
        return (torch.softmax(logp, dim=1)[..., None] * m_k).sum(1)


def oracle_network(mixture: GaussianMixture, objective):
    """A 'network' whose output, read through `objective`'s parameterisation, is the exact posterior
    mean: the optimum of every regression objective on this path."""

    def net(x_in: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        c = PathCoefficients.at(objective.path, t, x_in)
        x_t = x_in / objective.parameterisation.net_input(torch.ones_like(x_in), c)
        x0 = mixture.posterior_mean(x_t, c.alpha.flatten(), c.sigma.flatten()).to(x_in.dtype).reshape(x_in.shape)
        return objective.parameterisation.target(Prediction(x0, (x_t - c.alpha * x0) / c.sigma), x_t, c)

    return net
