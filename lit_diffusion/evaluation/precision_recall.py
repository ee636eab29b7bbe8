"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric
for Assessing Generative Models", sec. 2, eq. 1-3).

Each set's manifold is the union of balls around its samples, of radius the distance to the k-th
nearest other sample of the same set (k = 3 in the paper). Precision is the fraction of generated
samples inside the real manifold; recall is the fraction of real samples inside the generated one.
Both depend on the set sizes (the radii shrink as sets grow): compare numbers at equal sizes.
"""
from __future__ import annotations

import torch

_ROWS = 1024  # rows of the distance matrix held at once


def _check(f: torch.Tensor, which: str, k: int) -> torch.Tensor:
    if not isinstance(f, torch.Tensor) or f.ndim != 2:
        shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
        raise ValueError(f"precision_recall: {which} must be an (N, D) tensor, got {shape}")
    if f.shape[0] <= k:
        raise ValueError(f"precision_recall: {which} has {f.shape[0]} rows; k={k} nearest neighbours need more than k")
    f = f.detach().to(torch.float64)  # computed on the input's device
    if not torch.isfinite(f).all():
        raise ValueError(f"precision_recall: {which} contains NaN or inf")
    return f


def knn_radii(f: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of every row of ``f`` (N, D) to its k-th nearest other row: (N,)."""
    radii = []
    for start in range(0, f.shape[0], _ROWS):
        d = torch.cdist(f[start:start + _ROWS], f)
        # the smallest distance is the row itself (0): the k-th neighbour is the (k+1)-th smallest
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_coverage(manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor) -> float:
    """Fraction of ``queries`` within radii[j] of some manifold point j (eq. 1-2)."""
    inside = torch.zeros(queries.shape[0], dtype=torch.bool, device=queries.device)
    for start in range(0, queries.shape[0], _ROWS):
        d = torch.cdist(queries[start:start + _ROWS], manifold)
        inside[start:start + _ROWS] = (d <= radii[None, :]).any(dim=1)
    return float(inside.double().mean())


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3,
                     real_radii: torch.Tensor | None = None) -> tuple[float, float]:
    """(precision, recall) of ``fake_features`` (M, D) against ``real_features`` (N, D).

    Computed in float64 on the features' device (on a GPU for tens of thousands of samples).
    ``real_radii``: ``knn_radii(real, k)`` computed earlier, for a fixed reference scored many times.
    """
    if k < 1:
        raise ValueError(f"precision_recall: k must be >= 1, got {k}")
    real, fake = _check(real_features, "real_features", k), _check(fake_features, "fake_features", k)
    if real.device != fake.device:
        raise ValueError(f"precision_recall: real_features is on {real.device}, fake_features on {fake.device}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"precision_recall: feature dimensions differ, real {tuple(real.shape)} vs "
                         f"fake {tuple(fake.shape)}")
    precision = manifold_coverage(real, knn_radii(real, k) if real_radii is None else real_radii, fake)
    recall = manifold_coverage(fake, knn_radii(fake, k), real)
    return precision, recall
