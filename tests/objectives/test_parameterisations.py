"""Parameterisations and weightings: round trips, error scales, closed-form weights, the CM boundary."""
import pytest
import torch

from lit_diffusion.objectives import (
    ConsistencyPreconditioning,
    EDMPreconditioning,
    EDMWeighting,
    MinSNRWeighting,
    PathCoefficients,
    Prediction,
    QuantityParameterisation,
    make_parameterisation,
    make_path,
)

PARAMS = [QuantityParameterisation(k) for k in ("x0", "eps", "v", "velocity")] + [
    EDMPreconditioning(0.5), ConsistencyPreconditioning(0.5)]


def _setup(path_name, seed=0):
    path = make_path(path_name)
    g = torch.Generator().manual_seed(seed)
    t = 0.01 + 0.98 * torch.rand(32, generator=g, dtype=torch.float64)
    x0, eps = torch.randn(2, 32, 3, generator=g, dtype=torch.float64)
    c = PathCoefficients.at(path, t, x0)
    return path, c, x0, eps, c.alpha * x0 + c.sigma * eps


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.name)
@pytest.mark.parametrize("path_name", ["linear", "vp_linear", "edm", "ot"])
def test_target_round_trips_and_error_scale(param, path_name):
    _, c, x0, eps, x_t = _setup(path_name)
    raw = param.target(Prediction(x0, eps), x_t, c)
    back = param.to_prediction(raw, x_t, c)
    torch.testing.assert_close(back.x0, x0, rtol=0, atol=1e-9)
    torch.testing.assert_close(back.eps, eps, rtol=0, atol=1e-7)
    # moving x0 by delta at fixed x_t moves the raw target by error_scale * delta
    delta = 1e-3 * torch.randn_like(x0)
    x0b = x0 + delta
    raw_b = param.target(Prediction(x0b, (x_t - c.alpha * x0b) / c.sigma), x_t, c)
    torch.testing.assert_close(raw_b - raw, param.error_scale(c) * delta, rtol=1e-6, atol=1e-9)


def test_min_snr_matches_hang_et_al_closed_forms():
    _, c, *_ = _setup("vp_cosine")
    snr = (c.alpha / c.sigma).flatten() ** 2
    w = MinSNRWeighting(5.0)
    torch.testing.assert_close(w(c, make_parameterisation("eps")), snr.clamp(max=5) / snr)
    torch.testing.assert_close(w(c, make_parameterisation("x0")), snr.clamp(max=5))
    torch.testing.assert_close(w(c, make_parameterisation("v")), snr.clamp(max=5) / (snr + 1))


def test_edm_weighting_is_one_under_edm_preconditioning():
    _, c, *_ = _setup("edm")
    torch.testing.assert_close(EDMWeighting(0.5)(c, EDMPreconditioning(0.5)), torch.ones(32, dtype=torch.float64))


def test_consistency_boundary_is_exact():
    """f(x, t=0) = x for any network output: c_skip = 1 and c_out = 0 exactly at sigma_min."""
    path = make_path("edm")
    x = torch.randn(16, 3)
    c = PathCoefficients.at(path, torch.zeros(16), x)
    param = ConsistencyPreconditioning()
    assert torch.equal(param.c_out(c), torch.zeros_like(param.c_out(c)))
    out = param.to_prediction(1e3 * torch.randn_like(x), x, c)
    assert torch.equal(out.x0, x)


def test_unknown_parameterisation_is_named():
    with pytest.raises(ValueError, match="unknown parameterisation 'score'"):
        make_parameterisation("score")
    with pytest.raises(ValueError, match="sigma_data must be positive"):
        EDMPreconditioning(0.0)
