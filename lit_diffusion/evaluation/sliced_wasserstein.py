"""Sliced Wasserstein-2 distance between two sample sets (Rabin et al. 2011; Bonneel et al. 2015):
the average over random unit directions of the 1-D Wasserstein-2 distance of the projections, which
for equal-size sets is the mean squared gap between sorted projections."""
from __future__ import annotations

import torch


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = 256, generator=None) -> float:
    """SW_2 between x (N, D) and y (N, D), Monte-Carlo over `projections` directions."""
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"sliced_wasserstein needs two (N, D) sets of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    directions = torch.randn(x.shape[1], projections, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x.double() @ directions, dim=0)
    py, _ = torch.sort(y.double() @ directions, dim=0)
    return float((px - py).pow(2).mean().sqrt())
