"""SDEdit with an exact denoiser (a Gaussian mixture's posterior mean): at t0 = 1 it is plain sampling, as t0 -> 0
it returns its input, and from inputs drawn from the target it samples the target at any t0."""
import pytest
import torch

from lit_diffusion.objectives import DDPM, ConsistencyTraining, FlowMatching, GaussianMixture, MeanFlow, RectifiedFlow
from lit_diffusion.objectives import oracle_network
from lit_diffusion.objectives.editing import sdedit
from lit_diffusion.samplers.sdedit import check_t0

MIXTURE = GaussianMixture.isotropic([[-2.0, 0.0], [2.0, 1.0]], 0.5)
OBJECTIVES = {"rectified_flow": RectifiedFlow(), "flow_matching": FlowMatching(), "ddpm_discrete": DDPM(),
              "ddpm_continuous_v": DDPM(prediction="v", discrete=False), "consistency": ConsistencyTraining()}
SAMPLERS = {"rectified_flow": ["euler", "heun", "ddpm", "dpm++2m"], "flow_matching": ["euler", "ddim"],
            "ddpm_discrete": ["ddpm", "ddim"], "ddpm_continuous_v": ["ddpm", "heun"], "consistency": ["consistency"]}
CASES = [(o, s) for o in OBJECTIVES for s in SAMPLERS[o]]


def draws(n=512, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name, sampler", CASES)
def test_sdedit_at_t0_one_is_plain_sampling(name, sampler):
    objective = OBJECTIVES[name]
    net, noise, images = oracle_network(MIXTURE, objective), draws(seed=1), MIXTURE.sample(512)[0]
    plain = objective.sample_with_info(net, noise, sampler=sampler, nfe=8, generator=torch.Generator().manual_seed(3))
    edit = sdedit(objective, net, images, noise, 1.0, sampler=sampler, nfe=8, generator=torch.Generator().manual_seed(3))
    assert edit.nfe == plain.nfe and torch.equal(edit.x0, plain.x0)


def test_sdedit_just_below_one_approaches_plain_sampling_on_the_linear_path():
    """The start alpha_t0 x + sigma_t0 eps is continuous at t0 = 1 where alpha_1 = 0 (not only a branch)."""
    objective = RectifiedFlow()
    net, noise, images = oracle_network(MIXTURE, objective), draws(seed=1), MIXTURE.sample(512)[0]
    plain = objective.sample(net, noise, sampler="euler", nfe=16)
    near = sdedit(objective, net, images, noise, 1 - 1e-9, sampler="euler", nfe=16).x0
    assert (near - plain).abs().max() < 1e-5


@pytest.mark.parametrize("name, sampler", CASES)
def test_sdedit_as_t0_goes_to_zero_returns_the_input(name, sampler):
    objective = OBJECTIVES[name]
    net, images = oracle_network(MIXTURE, objective), MIXTURE.sample(512)[0]
    # ancestral steps add noise of scale sigma_t0 (~0.015 here): 0.1 is ~6 of it over 1024 coordinates
    t0 = 2e-3 if name != "ddpm_discrete" else 2 / 1000  # a discrete model's t0 is one of its steps
    err = (sdedit(objective, net, images, draws(), t0, sampler=sampler, nfe=2).x0 - images).abs().max()
    big = (sdedit(objective, net, images, draws(), 0.5, sampler=sampler, nfe=2).x0 - images).abs().max()
    assert err < 0.1 and big > 30 * err, (float(err), float(big))


@pytest.mark.parametrize("t0", [0.3, 0.7])
def test_sdedit_of_target_samples_stays_on_the_target(t0):
    """Inputs drawn from the target, noised to t0, are the path's marginal there: the exact ODE brings them back
    to the target (mean and covariance within the sampling error of 4000 draws plus Heun's bias)."""
    objective = FlowMatching()
    images = MIXTURE.sample(4000, generator=torch.Generator().manual_seed(5))[0]
    out = sdedit(objective, oracle_network(MIXTURE, objective), images, draws(4000, 6), t0, sampler="heun", nfe=31).x0
    assert (out.mean(0) - MIXTURE.mean()).abs().max() < 0.1
    assert (torch.cov(out.T) - MIXTURE.covariance()).abs().max() < 0.2


def test_sdedit_with_mean_flow_steps_from_t0():
    """MeanFlow edits with its own average-velocity sampler: one jump u(z, 0, t0) from the noised input."""
    objective = MeanFlow()

    def net(z, t, cond=None, r=None):  # the exact average velocity of a point mass at 0: u = z / t
        return z / t.reshape(-1, 1)

    images = torch.ones(4, 2, dtype=torch.float64)
    out = sdedit(objective, net, images, draws(4), 0.5, sampler="mean_flow", nfe=1)
    assert out.nfe == 1 and torch.allclose(out.x0, torch.zeros_like(images), atol=1e-12)


@pytest.mark.parametrize("t0", [0.0, -0.1, 1.5, float("nan"), True])
def test_t0_outside_zero_one_is_refused(t0):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        check_t0(t0)


def test_a_discrete_model_starts_on_one_of_its_steps():
    objective = DDPM()
    with pytest.raises(ValueError, match="n / T"):
        sdedit(objective, oracle_network(MIXTURE, objective), MIXTURE.sample(4)[0], draws(4), 0.3333, nfe=4)


def test_a_discrete_model_edits_on_integer_steps_below_t0():
    """From t0 = n0 / T the spacing is that of the chain's first n0 steps: linspace over k = 0..n0 - 1."""
    from lit_diffusion.objectives import DiscreteVPPath
    from lit_diffusion.samplers import time_grid

    grid = time_grid("linspace", 5, DiscreteVPPath(1000), t_max=0.5)
    assert grid.tolist() == [0.5, 0.375, 0.251, 0.126, 0.001, 0.0]  # t = (k + 1) / T, k = 499, 374, 250, 125, 0
