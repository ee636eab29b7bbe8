"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", sec. 4 and eq. 3/4).

KID is the squared maximum mean discrepancy between the feature distributions under the cubic
polynomial kernel k(x, y) = (x . y / d + 1)^3 (d the feature dimension), estimated without bias
from m samples of each set:

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
              - 2/m^2 sum_{i, j} k(x_i, y_j).

As in the paper, the estimate is averaged over ``subsets`` random subsets of ``subset_size``
samples drawn without replacement from each set; the spread over subsets is returned as the std
(population std, 0 for one subset). The unbiased estimate can be slightly negative.
"""
from __future__ import annotations

import torch


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x_i, y_j) = (x_i . y_j / d + 1)^3 for all pairs: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 of two equal-size sets (m, d) with the cubic polynomial kernel (float64 scalar)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off_xx = k_xx.sum() - k_xx.diagonal().sum()
    off_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def _check(f: torch.Tensor, which: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor) or f.ndim != 2:
        shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
        raise ValueError(f"kernel_inception_distance: {which} must be an (N, D) tensor, got {shape}")
    f = f.detach().to(torch.float64)  # computed on the input's device
    if not torch.isfinite(f).all():
        raise ValueError(f"kernel_inception_distance: {which} contains NaN or inf")
    return f


def kernel_inception_distance(f1: torch.Tensor, f2: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                              generator: torch.Generator | None = None) -> tuple[float, float]:
    """(mean, std) over ``subsets`` of the unbiased MMD^2 between features ``f1`` (N1, D) and ``f2`` (N2, D).

    Each subset draws ``subset_size`` rows of each set without replacement (a fresh draw per subset);
    ``generator`` (a CPU torch.Generator) makes the draws reproducible. Computed in float64 on the
    features' device.
    """
    f1, f2 = _check(f1, "f1"), _check(f2, "f2")
    if f1.device != f2.device:
        raise ValueError(f"kernel_inception_distance: f1 is on {f1.device}, f2 on {f2.device}")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"kernel_inception_distance: feature dimensions differ, f1 {tuple(f1.shape)} vs "
                         f"f2 {tuple(f2.shape)}")
    if subsets < 1:
        raise ValueError(f"kernel_inception_distance: subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"kernel_inception_distance: subset_size must be >= 2, got {subset_size}")
    for which, f in (("f1", f1), ("f2", f2)):
        if f.shape[0] < subset_size:
            raise ValueError(f"kernel_inception_distance: subset_size={subset_size} is more than the {f.shape[0]} "
                             f"rows of {which}; pass a smaller subset_size or more samples")
    scores = []
    for _ in range(subsets):
        i1 = torch.randperm(f1.shape[0], generator=generator)[:subset_size]
        i2 = torch.randperm(f2.shape[0], generator=generator)[:subset_size]
        scores.append(mmd2_unbiased(f1[i1.to(f1.device)], f2[i2.to(f2.device)]))
    scores = torch.stack(scores).to("cpu", torch.float64)  # one host sync for all subsets
    return float(scores.mean()), float(scores.std(unbiased=False))
