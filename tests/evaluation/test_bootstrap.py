"""Bootstrap interval of the Frechet distance: each resample's FD equals the FD computed directly on the
resampled rows (both algebraic paths), the interval is reproducible and as wide as the real sampling spread,
and the tie rule."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.evaluation.bootstrap import FDInterval, _counts, bootstrap_fd, bootstrap_fds, winner
from lit_diffusion.evaluation.frechet import frechet_distance, gaussian_stats


def _reference(d: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.4
    return gaussian_stats(torch.randn(400, d, generator=g, dtype=torch.float64) @ mix + 0.2)


@pytest.mark.parametrize("n,d", [(30, 12), (12, 12), (9, 12), (40, 6)])  # N <= D (Gram) and N > D paths
def test_each_replicate_equals_the_fd_of_the_resampled_rows(n, d):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 1.3
    mu_r, s_r = _reference(d)
    fds = bootstrap_fds(x, mu_r, s_r, replicates=6, seed=5, chunk=4)
    direct = [frechet_distance(*gaussian_stats(x[torch.repeat_interleave(torch.arange(n), w.long())]), mu_r, s_r)
              for w in _counts(n, 6, 5)]
    direct.append(frechet_distance(*gaussian_stats(x), mu_r, s_r))  # the last entry: no resampling
    # float64; the residue is sqrt of rounding in the zero eigenvalues of singular covariances
    torch.testing.assert_close(fds, torch.tensor(direct, dtype=torch.float64), rtol=1e-6, atol=0)


def test_interval_is_seeded_contains_the_fd_and_matches_the_sampling_spread():
    d, n = 4, 80
    mu_r, s_r = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    shift = torch.tensor([0.5, 0.0, 0.0, 0.0], dtype=torch.float64)
    draw = lambda s: torch.randn(n, d, generator=torch.Generator().manual_seed(s), dtype=torch.float64) + shift  # noqa: E731
    iv = bootstrap_fd(draw(0), mu_r, s_r, replicates=300, seed=3)
    assert iv == bootstrap_fd(draw(0), mu_r, s_r, replicates=300, seed=3)
    assert iv != bootstrap_fd(draw(0), mu_r, s_r, replicates=300, seed=4)
    assert iv.low < iv.fd < iv.high and iv.bias > 0 and iv.num_samples == n and iv.level == 0.95
    # the real spread of the FD over independent draws of n samples vs the interval's implied std
    real_sd = torch.tensor([frechet_distance(*gaussian_stats(draw(s)), mu_r, s_r) for s in range(1, 200)]).std()
    boot_sd = (iv.high - iv.low) / (2 * 1.96)
    assert 0.6 < boot_sd / float(real_sd) < 1.6, (boot_sd, float(real_sd))


def test_tie_rule():
    a = FDInterval(fd=5.0, low=4.5, high=5.5, level=0.95, replicates=10, seed=0, num_samples=10, bias=0.1)
    b = FDInterval(fd=6.0, low=5.8, high=6.2, level=0.95, replicates=10, seed=0, num_samples=10, bias=0.1)
    c = FDInterval(fd=5.3, low=5.0, high=5.9, level=0.95, replicates=10, seed=0, num_samples=10, bias=0.1)
    assert winner({"fm": a, "ddpm": b}) == ("fm", [])
    assert winner({"fm": a, "ddpm": b, "rf": c}) == (None, ["fm", "rf"])
    assert a.overlaps(c) and not a.overlaps(b) and c.overlaps(b)
    with pytest.raises(ValueError, match="no intervals"):
        winner({})


def test_bad_input():
    mu_r, s_r = _reference(5)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_fd(torch.full((10, 5), float("nan")), mu_r, s_r)
    with pytest.raises(ValueError, match="features have 3 dimensions, the reference 5"):
        bootstrap_fd(torch.randn(10, 3), mu_r, s_r)
    with pytest.raises(ValueError, match="level"):
        bootstrap_fd(torch.randn(10, 5), mu_r, s_r, level=95)
