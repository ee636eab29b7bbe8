"""At the exact posterior mean every regression loss equals its irreducible value (closed form for a
Gaussian target), and a perturbed predictor does worse."""
import pytest
import torch

from lit_diffusion.objectives import (
    DDPM,
    EDMPreconditioning,
    EDMWeighting,
    FlowMatching,
    GaussianMixture,
    LogNormalSigma,
    MinSNRWeighting,
    PathCoefficients,
    RectifiedFlow,
    oracle_network,
)
from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.objectives.paths import EDMSigmaPath

GAUSSIAN = GaussianMixture([[0.5, -1.0]], [[[1.5, 0.4], [0.4, 0.6]]])

OBJECTIVES = {
    "ddpm-eps": DDPM(),
    "ddpm-x0": DDPM(prediction="x0"),
    "ddpm-v-cosine-minsnr": DDPM(prediction="v", discrete=False, schedule="cosine", weighting=MinSNRWeighting(5.0)),
    "flow-matching": FlowMatching(),
    "rectified-flow": RectifiedFlow(),
    "edm": DiffusionObjective(EDMSigmaPath(), EDMPreconditioning(), LogNormalSigma(), EDMWeighting()),
}


def irreducible(objective, t):
    """w(t) k(t)^2 tr Cov[x0 | x_t] / D: the loss of the exact posterior mean, per sample."""
    probe = torch.zeros(t.shape[0], 2, dtype=torch.float64)
    c = PathCoefficients.at(objective.path, t.double(), probe)
    _, cov = GAUSSIAN.posterior(probe, c.alpha.flatten(), c.sigma.flatten())
    k2 = objective.parameterisation.error_scale(c).flatten() ** 2
    return objective.weighting(c, objective.parameterisation) * k2 * torch.diagonal(cov, dim1=1, dim2=2).mean(1)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_loss_at_the_optimum_is_the_irreducible_value(name):
    objective = OBJECTIVES[name]
    g = torch.Generator().manual_seed(0)
    x0, _ = GAUSSIAN.sample(20_000, generator=g)
    out = objective.loss_with_diagnostics(oracle_network(GAUSSIAN, objective), x0, generator=g)
    gap = out.loss - irreducible(objective, out.t)
    stderr = float(gap.std()) / gap.numel() ** 0.5
    assert abs(float(gap.mean())) < 4 * stderr + 1e-9, f"{name}: loss - irreducible = {float(gap.mean()):.4g} +- {stderr:.2g}"

    def perturbed(x_in, t, cond=None):  # x0 prediction shifted by 0.1 in every coordinate
        c = PathCoefficients.at(objective.path, t, x_in)
        return oracle_network(GAUSSIAN, objective)(x_in, t) + 0.1 * objective.parameterisation.error_scale(c)

    g = torch.Generator().manual_seed(0)
    worse = objective.loss(perturbed, x0, generator=torch.Generator().manual_seed(0))
    best = objective.loss(oracle_network(GAUSSIAN, objective), x0, generator=torch.Generator().manual_seed(0))
    assert float(worse.mean()) > float(best.mean())
