"""KID: the vectorised unbiased MMD^2 against a direct double loop (Binkowski et al. 2018, eq. 3)."""
from __future__ import annotations

import itertools

import pytest
import torch

from lit_diffusion.evaluation.kid import kernel_inception_distance


def mmd2_by_loops(x: torch.Tensor, y: torch.Tensor) -> float:
    m, d = x.shape

    def k(a, b) -> float:
        return (sum(float(a[i]) * float(b[i]) for i in range(d)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_one_subset_of_the_whole_set_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = 0.5 * torch.randn(20, 5, generator=g, dtype=torch.float64) + 0.3
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=20, generator=g)
    assert mean == pytest.approx(mmd2_by_loops(x, y), rel=1e-12, abs=1e-14)
    assert std == 0.0


def test_subsets_average_the_loop_estimate_of_each_subset():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g) + 1
    mean, std = kernel_inception_distance(x, y, subsets=5, subset_size=12, generator=torch.Generator().manual_seed(7))
    g2 = torch.Generator().manual_seed(7)  # the same draws: a permutation of each set per subset
    values = []
    for _ in range(5):
        i, j = torch.randperm(40, generator=g2)[:12], torch.randperm(30, generator=g2)[:12]
        values.append(mmd2_by_loops(x[i].double(), y[j].double()))
    assert mean == pytest.approx(sum(values) / 5, rel=1e-10)
    assert std == pytest.approx(float(torch.tensor(values, dtype=torch.float64).std(unbiased=False)), rel=1e-8)


def test_same_distribution_near_zero_different_positive():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g)
    c = torch.randn(2000, 16, generator=g) * 1.5 + 0.5
    same, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=500, generator=g)
    diff, _ = kernel_inception_distance(a, c, subsets=20, subset_size=500, generator=g)
    assert abs(same) < 3 * same_std + 1e-3
    assert diff > 50 * abs(same)


def test_bad_inputs():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="subset_size=20 is more than the 10 rows of f1"):
        kernel_inception_distance(x, torch.randn(30, 3), subset_size=20)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        kernel_inception_distance(x, torch.randn(10, 4), subset_size=5)
    with pytest.raises(ValueError, match="f2 must be an \\(N, D\\) tensor"):
        kernel_inception_distance(x, torch.randn(10), subset_size=5)
    with pytest.raises(ValueError, match="subsets must be >= 1"):
        kernel_inception_distance(x, x, subsets=0, subset_size=5)
