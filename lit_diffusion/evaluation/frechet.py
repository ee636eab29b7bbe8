"""Frechet distance between two Gaussians, the FID formula (Heusel et al. 2017, eq. 6).

For N(mu1, S1) and N(mu2, S2) the squared 2-Wasserstein (Frechet) distance is (Dowson & Landau
1982)

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix M = S1^(1/2) S2 S1^(1/2)
(AB and BA have the same eigenvalues, with A = S1^(1/2), B = S1^(1/2) S2), so
tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(M)). Both square roots therefore come from symmetric
eigendecompositions (``torch.linalg.eigh``) in float64: no complex parts, no iterative sqrtm, and
singular covariances (fewer samples than dimensions, dead features) need no epsilon. Eigenvalues
that round to slightly negative values are clamped to 0.
"""
from __future__ import annotations

import torch

Stats = tuple[torch.Tensor, torch.Tensor]


def gaussian_stats(features: torch.Tensor) -> Stats:
    """Mean (F,) and unbiased covariance (F, F) of ``features`` (N, F), both float64."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise ValueError(f"gaussian_stats: features must be an (N, F) tensor, got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}")
    if features.shape[0] < 2:
        raise ValueError(f"gaussian_stats: features needs at least 2 rows for a covariance, got {features.shape[0]}")
    f = features.detach().to(torch.float64)
    if not torch.isfinite(f).all():
        raise ValueError("gaussian_stats: features contains NaN or inf")
    mu = f.mean(dim=0)
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return mu, sigma


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative rounding -> 0)."""
    evals, evecs = torch.linalg.eigh(s)
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T


def _check_stats(mu: torch.Tensor, sigma: torch.Tensor, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    mu = torch.as_tensor(mu).detach().to(torch.float64).cpu()
    sigma = torch.as_tensor(sigma).detach().to(torch.float64).cpu()
    if mu.ndim != 1:
        raise ValueError(f"frechet_distance: mu{which} must be a vector (D,), got shape {tuple(mu.shape)}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(f"frechet_distance: sigma{which} must be ({d}, {d}) to match mu{which}, "
                         f"got {tuple(sigma.shape)}")
    if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        raise ValueError(f"frechet_distance: mu{which} or sigma{which} contains NaN or inf")
    scale = sigma.abs().max().clamp(min=1e-300)
    if (sigma - sigma.T).abs().max() > 1e-6 * scale:
        raise ValueError(f"frechet_distance: sigma{which} is not symmetric")
    return mu, (sigma + sigma.T) / 2


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Squared Frechet distance d^2(N(mu1, sigma1), N(mu2, sigma2)) in float64 (what "FID" reports)."""
    mu1, sigma1 = _check_stats(mu1, sigma1, "1")
    mu2, sigma2 = _check_stats(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: dimensions differ, mu1 {tuple(mu1.shape)} vs mu2 {tuple(mu2.shape)}")
    root1 = _psd_sqrt(sigma1)
    m = root1 @ sigma2 @ root1
    m = (m + m.T) / 2
    tr_covmean = torch.linalg.eigvalsh(m).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    d2 = diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean
    # d^2 >= 0 exactly; a tiny negative value is rounding (identical inputs)
    return float(d2.clamp(min=0))
