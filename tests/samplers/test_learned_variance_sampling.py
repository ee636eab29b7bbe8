"""DDPM ancestral steps with a learned variance (Improved DDPM, eq. 15) on full and respaced grids, checked
against diffusers' DDPMScheduler(variance_type="learned_range"); ODE samplers use the mean only."""
import math

import pytest
import torch

from lit_diffusion.contract import Prediction, VariancePrediction
from lit_diffusion.objectives.paths import DiscreteVPPath
from lit_diffusion.samplers import ddpm_step, run_sampler

T = 1000


def step_noise_std(path, t: float, s: float, var_frac) -> torch.Tensor:
    """The std of ddpm_step's added noise: at x = 0 with x0 = 0 the mean is 0, so the output is std * z."""
    x = torch.zeros(1, 3, dtype=torch.float64)

    def predict(x_, t_):
        zero = torch.zeros_like(x_)
        return Prediction(zero, zero) if var_frac is None else VariancePrediction(zero, zero, var_frac)

    out = ddpm_step(path, predict, x, t, s, generator=torch.Generator().manual_seed(0))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return out / z


@pytest.mark.parametrize("inference_steps", [T, 50])
def test_learned_range_step_variance_equals_diffusers(inference_steps):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type="learned_range")
    scheduler.set_timesteps(inference_steps)
    path = DiscreteVPPath(T)
    v = torch.tensor([[-1.0, 0.3, 0.9]], dtype=torch.float64)  # the raw variance channel, [-1, 1]
    for k in scheduler.timesteps.tolist()[:-1] + [20]:  # diffusers' timestep k is the project's t = (k + 1) / T
        prev = int(scheduler.previous_timestep(k))
        ref = torch.exp(0.5 * scheduler._get_variance(k, predicted_variance=v.float()))
        ours = step_noise_std(path, (k + 1) / T, (prev + 1) / T, (v + 1) / 2)
        # diffusers works in float32: 1 - alpha_bar cancels near k = 0 (worst 2.4e-4 there, 6e-5 for k > 20)
        assert torch.allclose(ours.float(), ref, rtol=5e-4, atol=0), k


def test_fixed_variances_are_the_two_ends_of_the_interpolation():
    path, t, s = DiscreteVPPath(T), 0.5, 0.48
    abar_t, abar_s = (float(path.alpha(torch.tensor([u], dtype=torch.float64))) ** 2 for u in (t, s))
    beta = 1 - abar_t / abar_s  # the respaced beta of the step t -> s
    beta_tilde = (1 - abar_s) / (1 - abar_t) * beta
    ones = torch.ones(1, 3, dtype=torch.float64)
    assert torch.allclose(step_noise_std(path, t, s, None), torch.full((1, 3), math.sqrt(beta_tilde), dtype=torch.float64))
    assert torch.allclose(step_noise_std(path, t, s, 0 * ones), torch.full((1, 3), math.sqrt(beta_tilde), dtype=torch.float64))
    assert torch.allclose(step_noise_std(path, t, s, ones), torch.full((1, 3), math.sqrt(beta), dtype=torch.float64))
    assert torch.equal(step_noise_std(path, 1 / T, 0.0, ones), torch.zeros(1, 3, dtype=torch.float64))  # last step


@pytest.mark.parametrize("sampler", ["ddim", "euler", "heun", "dpm++2m"])
def test_ode_samplers_use_only_the_mean(sampler):
    path, x = DiscreteVPPath(T), torch.randn(4, 2, dtype=torch.float64)

    def mean_only(x_, t):
        a, s = (float(f(torch.tensor([t], dtype=torch.float64))) for f in (path.alpha, path.sigma))
        x0 = 0.5 * x_
        return Prediction(x0, (x_ - a * x0) / s)

    def with_variance(x_, t):
        p = mean_only(x_, t)
        return VariancePrediction(p.x0, p.eps, torch.rand_like(x_))

    a = run_sampler(sampler, path, mean_only, x, nfe=6).x0
    b = run_sampler(sampler, path, with_variance, x, nfe=6).x0
    assert torch.equal(a, b)
