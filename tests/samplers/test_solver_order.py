"""Convergence order on an analytic ODE: for a Gaussian target N(m, s^2) the probability-flow ODE has the
closed-form solution x_t = alpha_t m + sqrt(alpha_t^2 s^2 + sigma_t^2) z, so each solver's global error
is known exactly; halving the step should halve it (first order) or quarter it (second order)."""
import math

import pytest
import torch

from lit_diffusion.objectives import DDPM, GaussianMixture, RectifiedFlow, oracle_network
from lit_diffusion.samplers import sample_dpm_solver_2m, sample_euler, sample_heun

M, S = 0.7, 0.4
GAUSSIAN = GaussianMixture([[M]], [[[S**2]]])


def global_error(objective, sampler, steps, t0=1.0, t1=0.1):
    x_start = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]
    a0, s0 = (float(f(torch.tensor(t0, dtype=torch.float64))) for f in (objective.path.alpha, objective.path.sigma))
    a1, s1 = (float(f(torch.tensor(t1, dtype=torch.float64))) for f in (objective.path.alpha, objective.path.sigma))
    z = (x_start - a0 * M) / math.sqrt(a0**2 * S**2 + s0**2)
    exact = a1 * M + math.sqrt(a1**2 * S**2 + s1**2) * z
    grid = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)
    out = sampler(objective.path, objective.predictor(oracle_network(GAUSSIAN, objective)), x_start, grid)
    return float((out.x0 - exact).abs().max())


@pytest.mark.parametrize("objective", [RectifiedFlow(), DDPM(discrete=False)], ids=["linear", "vp"])
@pytest.mark.parametrize("sampler,order", [(sample_euler, 1), (sample_heun, 2), (sample_dpm_solver_2m, 2)],
                         ids=["euler", "heun", "dpm++2m"])
def test_halving_the_step_divides_the_error_by_2_to_the_order(objective, sampler, order):
    # start below t = 1 on the linear path so that Heun does not fall back to Euler on a first step
    # from alpha = 0, which would cap its order at one for that step
    t0 = 0.95
    errors = [global_error(objective, sampler, n, t0=t0) for n in (32, 64, 128, 256, 512)]
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    expected = 2.0**order
    # every halving gains at least ~the expected factor, and the finest one is within 30% of it
    # (DPM-Solver++'s first-order final step makes it approach 4 from above on the linear path)
    assert all(r > 0.75 * expected for r in ratios), f"errors {errors}, ratios {ratios}"
    assert 0.75 * expected < ratios[-1] < 1.3 * expected, f"errors {errors}, ratios {ratios}"
