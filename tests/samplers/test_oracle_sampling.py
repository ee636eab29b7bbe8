"""Every sampler, fed the exact posterior mean of a known target, reproduces that target."""
import pytest
import torch

from lit_diffusion.objectives import (
    DDPM,
    ConsistencyTraining,
    EDMPreconditioning,
    EDMWeighting,
    FlowMatching,
    GaussianMixture,
    LogNormalSigma,
    PathCoefficients,
    Prediction,
    RectifiedFlow,
    oracle_network,
)
from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.objectives.paths import EDMSigmaPath
from lit_diffusion.samplers import sample_consistency, sample_ddim, sample_ddpm, time_grid

MIXTURE = GaussianMixture.isotropic([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], 0.5, [0.5, 0.3, 0.2])
N = 2000

OBJECTIVES = {
    "ddpm-eps-discrete": DDPM(),
    "ddpm-x0-cosine": DDPM(prediction="x0", discrete=False, schedule="cosine"),
    "ddpm-v-continuous": DDPM(prediction="v", discrete=False),
    "flow-matching": FlowMatching(),
    "rectified-flow": RectifiedFlow(),
    "edm": DiffusionObjective(EDMSigmaPath(), EDMPreconditioning(), LogNormalSigma(), EDMWeighting()),
}
# first-order samplers get 128 evaluations, second-order ones 32 (issue: >= 32 NFE)
SAMPLERS = {"euler": 128, "ddim": 128, "heun": 33, "dpm++2m": 32, "adaptive": None}


def component_weights(x):
    a, s = torch.ones(x.shape[0], dtype=torch.float64), torch.zeros(x.shape[0], dtype=torch.float64)
    labels = MIXTURE._log_joint(x.double(), a, s)[0].argmax(1)
    return torch.bincount(labels, minlength=3).double() / x.shape[0]


def assert_matches_mixture(x, label):
    # tolerances: ~4 Monte-Carlo standard errors at N = 2000 plus the solver's bias at these NFEs
    mean_err = (x.mean(0) - MIXTURE.mean()).abs().max()
    cov_err = (torch.cov(x.T) - MIXTURE.covariance()).abs().max()
    w_err = (component_weights(x) - MIXTURE.weights).abs().max()
    assert mean_err < 0.15, f"{label}: mean off by {float(mean_err):.3f}"
    assert cov_err < 0.35, f"{label}: covariance off by {float(cov_err):.3f} (entries up to 3.3)"
    assert w_err < 0.04, f"{label}: mixture weights off by {float(w_err):.3f}"


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("name", OBJECTIVES)
def test_deterministic_samplers_reproduce_the_mixture(name, sampler):
    objective = OBJECTIVES[name]
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = objective.sample_with_info(oracle_network(MIXTURE, objective), noise, sampler=sampler, nfe=SAMPLERS[sampler])
    assert torch.isfinite(out.x0).all()
    if SAMPLERS[sampler] is not None:
        assert out.nfe <= SAMPLERS[sampler] and out.nfe >= SAMPLERS[sampler] - 1
    assert_matches_mixture(out.x0, f"{name}/{sampler} ({out.nfe} NFE)")


def test_ddpm_ancestral_1000_steps_reproduces_the_mixture():
    objective = DDPM()
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = objective.sample_with_info(oracle_network(MIXTURE, objective), noise, sampler="ddpm", nfe=1000,
                                     generator=torch.Generator().manual_seed(1))
    assert out.nfe == 1000
    assert_matches_mixture(out.x0, "ddpm ancestral, 1000 steps")


def test_ddim_with_eta_one_is_ddpm_ancestral():
    """DDIM's eta = 1 and the posterior-mean form of DDPM are the same update (same noise draws)."""
    objective = DDPM(discrete=False, schedule="cosine")
    predict = objective.predictor(oracle_network(MIXTURE, objective))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grid = time_grid("uniform", 20, objective.path)
    a = sample_ddim(objective.path, predict, x, grid, generator=torch.Generator().manual_seed(4), eta=1.0)
    b = sample_ddpm(objective.path, predict, x, grid, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a.x0, b.x0, rtol=1e-9, atol=1e-9)


def test_consistency_sampling_with_the_exact_map_is_exact_in_one_step():
    """For a Gaussian target the probability-flow map is affine: f(x_t) = m + sqrt(s^2 + s_min^2) (x_t - m) /
    sqrt(s^2 + sigma_t^2) on the EDM path; one consistency step from the t = 1 marginal returns the target."""
    m, s = torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([0.7, 1.4], dtype=torch.float64)
    objective = ConsistencyTraining()
    s_min = objective.path.sigma_min

    def exact_map(x_in, t, cond=None):
        c = PathCoefficients.at(objective.path, t, x_in)
        x_t = x_in / objective.parameterisation.net_input(torch.ones_like(x_in), c)
        f = m + torch.sqrt(s**2 + s_min**2) * (x_t - m) / torch.sqrt(s**2 + c.sigma**2)
        return objective.parameterisation.target(Prediction(f, (x_t - f) / c.sigma), x_t, c)

    z = torch.randn(50_000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x1 = m + torch.sqrt(s**2 + objective.path.sigma_max**2) * z  # exact marginal at t = 1
    out = sample_consistency(objective.path, objective.predictor(exact_map), x1, time_grid("uniform", 1, objective.path))
    assert out.nfe == 1
    torch.testing.assert_close(out.x0, m + torch.sqrt(s**2 + s_min**2) * z, rtol=1e-10, atol=1e-10)
    assert (out.x0.mean(0) - m).abs().max() < 4 * float(s.max()) / 50_000**0.5
    torch.testing.assert_close(out.x0.std(0), torch.sqrt(s**2 + s_min**2), rtol=0.02, atol=0)
