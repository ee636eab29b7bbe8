"""Paths and conversions: float64 round trips, boundary values, derivatives against finite differences."""
import itertools

import pytest
import torch

from lit_diffusion.objectives import PathCoefficients, convert, make_path
from lit_diffusion.objectives.conversions import QUANTITIES
from lit_diffusion.objectives.paths import PATHS, DiscreteVPPath

ALL_PATHS = [make_path(name) for name in PATHS] + [DiscreteVPPath(1000, "cosine"), make_path("ot", sigma_min=0.3)]


def _times(path, n=64):
    g = torch.Generator().manual_seed(0)
    lo = max(path.t_min, 1e-3)
    return lo + (1 - 2e-3 - lo) * torch.rand(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("path", ALL_PATHS, ids=repr)
@pytest.mark.parametrize("src,dst", list(itertools.permutations(QUANTITIES, 2)))
def test_conversions_round_trip_float64(path, src, dst):
    t = _times(path)
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(64, 3, generator=g, dtype=torch.float64)
    value = torch.randn(64, 3, generator=g, dtype=torch.float64)
    c = PathCoefficients.at(path, t, x_t)
    back = convert(convert(value, src, dst, x_t, c), dst, src, x_t, c)
    torch.testing.assert_close(back, value, rtol=0, atol=1e-10)


@pytest.mark.parametrize("path", ALL_PATHS, ids=repr)
def test_conversions_agree_with_the_generating_pair(path):
    """Build x_t from known (x0, eps); every quantity computed from it maps back to the same x0."""
    t = _times(path)
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(2, 64, 4, generator=g, dtype=torch.float64)
    c = PathCoefficients.at(path, t, x0)
    x_t = c.alpha * x0 + c.sigma * eps
    for kind in QUANTITIES:
        value = convert(x0, "x0", kind, x_t, c)
        torch.testing.assert_close(convert(value, kind, "eps", x_t, c), eps, rtol=0, atol=1e-9)
    # the velocity is the time derivative of x_t at fixed (x0, eps)
    torch.testing.assert_close(convert(x0, "x0", "velocity", x_t, c), c.d_alpha * x0 + c.d_sigma * eps)


@pytest.mark.parametrize("path", ALL_PATHS, ids=repr)
def test_derivatives_match_finite_differences(path):
    t = _times(path)
    if isinstance(path, DiscreteVPPath):  # piecewise: stay inside one interval
        t = (torch.floor(t * path.num_steps) + 0.5) / path.num_steps
    h = 1e-6
    for f, df in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        numeric = (f(t + h) - f(t - h)) / (2 * h)
        torch.testing.assert_close(df(t), numeric, rtol=1e-5, atol=1e-6)


def test_boundary_values():
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    for name in ("linear", "ot", "vp_linear", "vp_discrete"):
        p = make_path(name)
        assert float(p.alpha(zero)) == 1.0
    assert float(make_path("linear").sigma(zero)) == 0.0 and float(make_path("linear").alpha(one)) == 0.0
    ot = make_path("ot", sigma_min=0.01)
    assert float(ot.sigma(zero)) == pytest.approx(0.01) and float(ot.sigma(one)) == 1.0 and float(ot.alpha(one)) == 0.0
    edm = make_path("edm")
    assert float(edm.sigma(zero)) == pytest.approx(0.002, rel=1e-12)
    assert float(edm.sigma(one)) == pytest.approx(80.0, rel=1e-12)
    cos = make_path("vp_cosine")
    assert float(cos.log_snr(zero)) == pytest.approx(15.0) and float(cos.log_snr(one)) == pytest.approx(-15.0)
    vp = make_path("vp_linear")  # alpha_1 = exp(-(0.1 + 19.9 / 2) / 2)
    assert float(vp.alpha(one)) == pytest.approx(float(torch.exp(torch.tensor(-(0.1 + 9.95) / 2, dtype=torch.float64))))


@pytest.mark.parametrize("name", ["vp_linear", "vp_cosine", "vp_discrete"])
def test_vp_paths_preserve_variance(name):
    p = make_path(name)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(p.alpha(t) ** 2 + p.sigma(t) ** 2, torch.ones_like(t))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_discrete_path_is_exact_on_the_grid(schedule):
    p = DiscreteVPPath(1000, schedule)
    betas = p.betas()
    assert betas.shape == (1000,)
    if schedule == "linear":  # Ho et al. 2020: 1e-4 .. 0.02
        assert float(betas[0]) == pytest.approx(1e-4) and float(betas[-1]) == pytest.approx(0.02)
    alpha_bar = torch.cumprod(1 - betas, 0)
    n = torch.arange(1, 1001, dtype=torch.float64)
    torch.testing.assert_close(p.alpha(n / 1000) ** 2, alpha_bar)


@pytest.mark.parametrize("path", ALL_PATHS, ids=repr)
def test_noise_ratio_inverse(path):
    t = _times(path)
    torch.testing.assert_close(path.t_from_noise_ratio(path.noise_ratio(t)), t, rtol=0, atol=1e-9)


def test_bad_path_arguments_are_named():
    with pytest.raises(ValueError, match="sigma_min must lie in"):
        make_path("ot", sigma_min=1.5)
    with pytest.raises(ValueError, match="sigma_min must lie in"):
        make_path("ot", sigma_min=0.0)
    with pytest.raises(ValueError, match="unknown path 'vq'"):
        make_path("vq")
    with pytest.raises(ValueError, match="unknown prediction quantity 'noise'"):
        convert(torch.zeros(1, 1), "noise", "x0", torch.zeros(1, 1), None)
