"""Improved precision/recall (Kynkaanniemi et al. 2019): extremes and a loop-based oracle."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.evaluation.precision_recall import precision_recall


def by_loops(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    def radii(s):
        out = []
        for i in range(len(s)):
            d = sorted(float((s[i] - s[j]).norm()) for j in range(len(s)) if j != i)
            out.append(d[k - 1])
        return out

    def coverage(manifold, r, queries):
        return sum(any(float((q - manifold[j]).norm()) <= r[j] for j in range(len(manifold))) for q in queries) / len(queries)

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


def test_identical_sets_are_one_one():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_far_apart_sets_are_zero_zero():
    g = torch.Generator().manual_seed(1)
    assert precision_recall(torch.randn(200, 8, generator=g), torch.randn(150, 8, generator=g) + 100) == (0.0, 0.0)


def test_half_off_manifold():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(400, 4, generator=g)
    fake = torch.cat([real[:200], torch.randn(200, 4, generator=g) + 100])
    precision, recall = precision_recall(real, fake)
    assert precision == 0.5 and recall >= 0.5


def test_matches_the_loop_oracle():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(60, 3, generator=g, dtype=torch.float64), 1.3 * torch.randn(45, 3, generator=g, dtype=torch.float64) + 0.4
    results = []
    for k in (1, 3, 5):
        p, r = precision_recall(real, fake, k=k)
        p0, r0 = by_loops(real, fake, k)
        assert p == pytest.approx(p0, abs=1e-12) and r == pytest.approx(r0, abs=1e-12)
        results.append((p, r))
    assert 0 < results[0][0] < 1 and 0 < results[0][1] < 1  # k = 1: neither trivially 0 nor 1
    for (p1, r1), (p2, r2) in zip(results, results[1:]):  # larger k, larger balls
        assert p1 <= p2 and r1 <= r2


def test_bad_inputs():
    with pytest.raises(ValueError, match="fake_features has 3 rows; k=3"):
        precision_recall(torch.randn(10, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        precision_recall(torch.randn(10, 2), torch.randn(10, 3))
    with pytest.raises(ValueError, match="k must be >= 1"):
        precision_recall(torch.randn(10, 2), torch.randn(10, 2), k=0)
