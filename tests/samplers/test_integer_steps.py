"""Discrete-time models sample on their integer steps (samplers/integer_steps.py), spaced as the references define
it: diffusers' timestep_spacing ("linspace", "leading", "trailing") and improved-diffusion's "ddimN" respacing.

Before (issue 28): the default grid was linspace(1, 1/T, N) in t, unrounded; at N = 50 the network was evaluated
up to 0.49 of a step off the integers it was trained on, and DDPM ancestral sampling of a toy eps-network differed
from diffusers' DDPMScheduler (linspace) by 1.7e-2 (fixed variance) and 2.0e-2 (learned range), samples of order 2.
After: it is diffusers' chain to 7e-15 (given diffusers the float64 table of its betas; figures below)."""
from __future__ import annotations

import math

import pytest
import torch

from lit_diffusion.contract import Prediction, VariancePrediction
from lit_diffusion.objectives import DiscreteVPPath, VPCosinePath
from lit_diffusion.samplers import grid_description, run_sampler, time_grid
from lit_diffusion.samplers.integer_steps import step_indices

diffusers = pytest.importorskip("diffusers")

T = 1000
TOY_PATH = DiscreteVPPath(T, "linear")


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "DDPMScheduler"])
def test_spacings_are_diffusers_timesteps(spacing, scheduler):
    """Every N of 1..1000 at T = 1000 and 1..37 at T = 37 (a tie such as trailing's 937.5 at N = 48 included).
    Where numpy.arange's float length gives diffusers' trailing one extra index -1 (N = 61, 103, ...), the project
    keeps the N steps asked for."""
    for num_train, counts in ((T, range(1, T + 1)), (37, range(1, 38))):
        reference = getattr(diffusers, scheduler)(num_train_timesteps=num_train, timestep_spacing=spacing)
        for n in counts:
            reference.set_timesteps(n)
            expected = reference.timesteps.tolist()
            if spacing == "trailing" and len(expected) == n + 1:
                assert expected[-1] == -1
                expected = expected[:-1]
            assert step_indices(spacing, n, num_train) == expected, (num_train, n)


def test_ddim_spacing_is_improved_diffusions_ddimN():
    """improved-diffusion respace.py, space_timesteps(T, "ddimN"): the smallest stride s with
    len(range(0, T, s)) == N; k = 0, s, 2s, ... (golden values derived from that rule)."""
    assert step_indices("ddim", 50, T) == list(range(980, -1, -20))
    assert step_indices("ddim50", 50, T) == list(range(980, -1, -20))
    assert step_indices("ddim", 250, T) == list(range(996, -1, -4))
    assert step_indices("ddim", 3, T) == [668, 334, 0]  # strides 334..499 all give 3; the smallest is taken
    assert step_indices("ddim", 1000, T) == list(range(999, -1, -1))


def test_bad_spacings_and_counts_fail_with_one_line():
    path = DiscreteVPPath(T)
    cases = [("sideways", 10, "unknown time grid 'sideways'"),
             ("linspace", 1001, "cannot place 1001 steps on a model of 1000"),
             ("ddim", 999, r"cannot make exactly 999 of 1000 steps with an integer stride: ask for 500 or 1000 steps"),
             ("ddim50", 40, "names 50 steps but 40 are asked for")]
    for spacing, steps, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            time_grid(spacing, steps, path)
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="needs a discrete-time model"):
        time_grid("trailing", 10, VPCosinePath())
    with pytest.raises(ValueError, match="cannot place 2000 steps"):
        run_sampler("ddim", path, lambda x, t: None, torch.zeros(1), nfe=2000)


@pytest.mark.parametrize("sampler, nfe", [("ddim", 50), ("ddpm", 50), ("dpm++2m", 25), ("heun", 19), ("euler", 250)])
def test_a_discrete_model_is_evaluated_only_on_its_integer_steps(sampler, nfe):
    path = DiscreteVPPath(T, "cosine")
    seen = []

    def predict(x, t):
        seen.append(float(t))
        return Prediction(torch.zeros_like(x), x / float(path.sigma(torch.tensor(float(t), dtype=torch.float64))))

    out = run_sampler(sampler, path, predict, torch.ones(2, 3, dtype=torch.float64), nfe=nfe,
                      generator=torch.Generator().manual_seed(0))
    assert out.nfe == nfe
    k = [round(t * T) - 1 for t in seen]
    assert max(abs(t * T - round(t * T)) for t in seen) < 1e-9
    assert set(k) <= set(step_indices("linspace", len(set(k)), T))
    assert grid_description(sampler, path) == "linspace (integer steps of T = 1000)"
    assert grid_description(sampler, VPCosinePath()) in ("uniform", "edm", "logsnr")  # continuous: unchanged


def project_predictor(path: DiscreteVPPath, learned: bool):
    def predict(x, t):
        t = float(t)
        k = t * T - 1.0  # the 0-based index the reference feeds, on or off the integers
        out = toy_output_at(x, k)
        alpha = float(path.alpha(torch.tensor(t, dtype=torch.float64)))
        sigma = float(path.sigma(torch.tensor(t, dtype=torch.float64)))
        eps, v = out.chunk(2, dim=1)
        x0 = (x - sigma * eps) / alpha
        return VariancePrediction(x0, eps, (v + 1) / 2) if learned else Prediction(x0, eps)
    return predict


def toy_output_at(x, k: float) -> torch.Tensor:
    """A network that depends on its (0-based) step k: eps, and v in [-1, 1] for a learned variance. eps is near
    the denoiser of data N(0, 0.5^2) (sigma x / sqrt(alpha^2 / 4 + sigma^2)), so that samples stay of order 1."""
    alpha_sq = float(TOY_PATH.alpha(torch.tensor((k + 1) / T, dtype=torch.float64))) ** 2
    eps = x * math.sqrt(1 - alpha_sq) / math.sqrt(alpha_sq / 4 + 1 - alpha_sq) * (1 + 0.1 * math.sin(k / 37.0))
    eps = eps + 0.05 * torch.tanh(x) * math.cos(k / 170.0)
    v = torch.tanh(0.5 * x + math.sin(k / 90.0))
    return torch.cat([eps, v], dim=1)


def float64_schedule(scheduler) -> None:
    """diffusers keeps alpha_bar in float32 (cumprod of float32 betas: 1e-5 relative off at T = 1000); give it
    the float64 table of the same linear betas so that what remains is the grid and the step formulas."""
    scheduler.alphas_cumprod = torch.exp(TOY_PATH.log_alpha_bar()[1:])
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)


def diffusers_ddpm_chain(x, steps: int, variance: str, generator) -> torch.Tensor:
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type=variance,
                                        clip_sample=False, timestep_spacing="linspace")
    scheduler.set_timesteps(steps)
    float64_schedule(scheduler)
    for k in scheduler.timesteps:
        out = toy_output_at(x, int(k))
        x = scheduler.step(out if variance == "learned_range" else out.chunk(2, 1)[0], k, x,
                           generator=generator).prev_sample
    return x


@pytest.mark.parametrize("variance, learned", [("fixed_small", False), ("learned_range", True)])
def test_ddpm_ancestral_by_default_is_diffusers_linspace_chain(variance, learned):
    """DDPMScheduler(timestep_spacing="linspace") at 50 steps on a toy network of the integer step, against the
    project's default DDPM grid on a DiscreteVPPath, one seeded generator drawing the per-step noise in the same
    order, samples of order 2. Measured max |difference|: 1.7e-2 (fixed) and 2.0e-2 (learned) on the old unrounded
    grid (grid="uniform", the default before), 6.2e-15 and 6.7e-15 on the default integer grid."""
    path = DiscreteVPPath(T, "linear")
    x_init = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = diffusers_ddpm_chain(x_init.clone(), 50, variance, torch.Generator().manual_seed(1))
    predict = project_predictor(path, learned)

    def project(grid):
        return run_sampler("ddpm", path, predict, x_init.clone(), nfe=50, grid=grid,
                           generator=torch.Generator().manual_seed(1)).x0

    assert float((project(None) - expected).abs().max()) < 1e-12
    assert float((project("uniform") - expected).abs().max()) > 1e-2  # the old grid, off the steps


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_on_a_named_spacing_is_diffusers_ddim(spacing):
    """DDIMScheduler(eta 0, set_alpha_to_one) steps from k to k - T // N; that is the next index of the grid for
    "leading" and "trailing" at N = 50, and the last step goes to alpha = 1 as the project's to t = 0. Measured max
    |difference|: 5.5e-2 (leading) and 2.8e-5 (trailing) on the old unrounded grid, < 1e-14 on the spacing."""
    path = DiscreteVPPath(T, "linear")
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, clip_sample=False, set_alpha_to_one=True,
                                        timestep_spacing=spacing)
    scheduler.set_timesteps(50)
    float64_schedule(scheduler)
    x = x_init = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k in scheduler.timesteps:
        x = scheduler.step(toy_output_at(x, int(k)).chunk(2, 1)[0], k, x).prev_sample
    got = run_sampler("ddim", path, project_predictor(path, False), x_init.clone(), nfe=50, grid=spacing).x0
    assert float((got - x).abs().max()) < 1e-12
    old = run_sampler("ddim", path, project_predictor(path, False), x_init.clone(), nfe=50, grid="uniform").x0
    assert float((old - x).abs().max()) > 1e-5, "the old grid is off the steps"


@pytest.mark.parametrize("steps", [8, 25])
def test_dpm_solver_by_default_is_diffusers_dpm_solver_on_the_same_steps(steps):
    """DPMSolverMultistepScheduler(dpmsolver++, order 2, final step first order to sigma 0) given the project's
    default indices (set_timesteps(timesteps=...): diffusers' own DPM "linspace" takes N + 1 points and drops k = 0,
    unlike its DDIM/DDPM "linspace"). diffusers runs this scheduler in float32 (its sigmas and the sample are cast),
    so agreement is to float32: measured 4.4e-7 (8 steps) and 1.1e-6 (25), samples of order 2; the old default
    grid (logsnr) was 0.82 and 0.56 away."""
    path = TOY_PATH
    scheduler = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=T, algorithm_type="dpmsolver++",
                                                      solver_order=2, lower_order_final=True, final_sigmas_type="zero")
    scheduler.alphas_cumprod = torch.exp(path.log_alpha_bar()[1:])
    scheduler.set_timesteps(timesteps=step_indices("linspace", steps, T))
    x = x_init = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k in scheduler.timesteps:
        x = scheduler.step(toy_output_at(x, int(k)).chunk(2, 1)[0], k, x).prev_sample
    predict = project_predictor(path, False)
    got = run_sampler("dpm++2m", path, predict, x_init.clone(), nfe=steps).x0
    assert float((got - x).abs().max()) < 3e-6
    old = run_sampler("dpm++2m", path, predict, x_init.clone(), nfe=steps, grid="logsnr").x0
    assert float((old - x).abs().max()) > 0.1
