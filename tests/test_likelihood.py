"""Bits/dim through the probability-flow ODE against the analytic density of a Gaussian target."""
import math

import pytest
import torch

from lit_diffusion.evaluation.likelihood import bits_per_dim, log_likelihood
from lit_diffusion.objectives import DDPM, FlowMatching, GaussianMixture, RectifiedFlow, oracle_network

GAUSSIAN = GaussianMixture([[0.5, -1.0, 0.2]], [[[0.5, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.8]]])


@pytest.mark.parametrize("objective", [RectifiedFlow(), FlowMatching(sigma_min=1e-3), DDPM(discrete=False)],
                         ids=["rectified-flow", "flow-matching", "ddpm-vp"])
def test_bits_per_dim_of_the_exact_velocity_matches_the_analytic_nll(objective):
    x, _ = GAUSSIAN.sample(64, generator=torch.Generator().manual_seed(0))
    net = oracle_network(GAUSSIAN, objective)
    bpd = bits_per_dim(objective, net, x)
    analytic = -GAUSSIAN.log_prob(x) / (3 * math.log(2))
    # per-sample within 1% of the analytic NLL (or 0.02 bits where the NLL is near zero)
    assert torch.allclose(bpd, analytic, rtol=0.01, atol=0.02), (bpd - analytic).abs().max()
    assert abs(float(bpd.mean() - analytic.mean())) < 0.01 * abs(float(analytic.mean()))


def test_hutchinson_estimator_is_unbiased_around_the_exact_value():
    objective = RectifiedFlow()
    net = oracle_network(GAUSSIAN, objective)
    x, _ = GAUSSIAN.sample(256, generator=torch.Generator().manual_seed(1))
    exact, _ = log_likelihood(objective, net, x, exact=True, rtol=1e-4, atol=1e-4)
    estimate, _ = log_likelihood(objective, net, x, exact=False, rtol=1e-4, atol=1e-4,
                                 generator=torch.Generator().manual_seed(2))
    gap = estimate - exact
    assert abs(float(gap.mean())) < 4 * float(gap.std()) / 256**0.5 + 1e-6
