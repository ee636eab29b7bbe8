"""Sliced Wasserstein-p distance between two sample sets (Rabin et al. 2011; Bonneel et al. 2015): the average
over random unit directions of the 1-D Wasserstein-p distance of the projections, which for equal-size sets is
the mean p-th power gap between sorted projections. p = 2 (the default) or p = 1 (less swayed by a few far
samples: the heavy-tailed toys)."""
from __future__ import annotations

import torch


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = 256, generator=None, p: int = 2) -> float:
    """SW_p between x (N, D) and y (N, D), Monte-Carlo over `projections` directions; p in (1, 2)."""
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"sliced_wasserstein needs two (N, D) sets of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if p not in (1, 2):
        raise ValueError(f"sliced_wasserstein: p must be 1 or 2, got {p}")
    directions = torch.randn(x.shape[1], projections, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x.double() @ directions, dim=0)
    py, _ = torch.sort(y.double() @ directions, dim=0)
    gap = (px - py).abs()
    return float(gap.mean()) if p == 1 else float(gap.pow(2).mean().sqrt())
