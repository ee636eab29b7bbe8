"""MeanFlow and sCM against the exact flow map of a 2-D Gaussian MIXTURE (issue 11, must-show 1).

The PF-ODE velocity of a mixture is closed form (posterior mean, objectives/analytic.py); the flow map
between two times comes from the adaptive Dormand-Prince solver at rtol 1e-8 (MixtureFlowMap), so the
exact average velocity u(z, r, t) = (z_t - z_r) / (t - r) and the exact consistency function z_t -> z_0
are known. Both networks contain a solver with adaptive step control (no forward-mode AD through it), so
the objectives take their finite-difference JVP option here.
"""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.objectives import GaussianMixture, RectifiedFlow, oracle_network
from lit_diffusion.objectives.continuous_consistency import ContinuousConsistency
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap, MixtureFlowMap
from lit_diffusion.objectives.mean_flow import MeanFlow
from lit_diffusion.objectives.paths import LinearPath
from lit_diffusion.objectives.trigflow import TrigFlowPath

SIGMA_D = 0.5
MIXTURE = GaussianMixture([[-1.0, 0.5], [1.0, -0.5]],
                          [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]], [0.4, 0.6])
LINEAR = MixtureFlowMap(MIXTURE, LinearPath(), rtol=1e-8, atol=1e-8)
TRIG = MixtureFlowMap(MIXTURE, TrigFlowPath(SIGMA_D), rtol=1e-8, atol=1e-8)


def data(n, seed=0):
    return MIXTURE.sample(n, generator=torch.Generator().manual_seed(seed))[0]


def shifted(net, scale=1.1, shift=0.05):
    return lambda z, t, cond=None, r=None: scale * (net(z, t, cond) if r is None else net(z, t, cond, r=r)) + shift


@pytest.mark.parametrize("path", [LinearPath(), TrigFlowPath(SIGMA_D)], ids=["linear", "trigflow"])
def test_the_solver_flow_map_is_the_closed_form_for_one_gaussian(path):
    """The oracle itself: for a one-component mixture the solver's flow equals the closed form."""
    mean, std = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    exact = GaussianFlowMap(mean, std, path)
    solved = MixtureFlowMap(GaussianMixture(mean[None], torch.diag(std**2)[None]), path)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 2, generator=g, dtype=torch.float64)
    t = 0.01 + 0.98 * torch.rand(512, generator=g, dtype=torch.float64)
    r = torch.where(torch.arange(512) < 128, torch.zeros_like(t), t * torch.rand(512, generator=g, dtype=torch.float64))
    torch.testing.assert_close(solved.flow(x, t, r), exact.flow(x, t, r), rtol=0, atol=1e-6)
    torch.testing.assert_close(solved.velocity(x, t), exact.velocity(x, t), rtol=1e-10, atol=1e-10)


def test_meanflow_loss_vanishes_at_the_exact_mixture_network_and_grows_when_perturbed():
    teacher = RectifiedFlow()
    distil = MeanFlow(ratio=0.5, adaptive_p=0.0, jvp="finite_difference", teacher=teacher,
                      teacher_net=oracle_network(MIXTURE, teacher))
    plain = MeanFlow(ratio=0.5, adaptive_p=0.0, jvp="finite_difference")
    net, x0 = LINEAR.mean_flow_net(), data(2048)
    losses = {(name, label): float(obj.loss(f, x0, generator=torch.Generator().manual_seed(3)).mean().detach())
              for name, obj in [("distil", distil), ("plain", plain)]
              for label, f in [("exact", net), ("perturbed", shifted(net))]}
    assert losses["distil", "exact"] < 1e-6, losses  # Monte-Carlo-free: only solver and FD error remain
    assert losses["distil", "perturbed"] > 1e-3, losses
    assert losses["plain", "perturbed"] > losses["plain", "exact"] + 1e-3, losses


def test_scm_loss_vanishes_at_the_exact_mixture_consistency_function_and_grows_when_perturbed():
    teacher = RectifiedFlow()
    scd = ContinuousConsistency(sigma_data=SIGMA_D, warmup_steps=0, jvp="finite_difference", teacher=teacher,
                                teacher_net=oracle_network(MIXTURE, teacher))
    sct = ContinuousConsistency(sigma_data=SIGMA_D, warmup_steps=0, jvp="finite_difference")
    net, x0 = TRIG.trigflow_net(SIGMA_D), data(2048)
    losses = {(name, label): float(obj.loss(f, x0, generator=torch.Generator().manual_seed(3)).mean().detach())
              for name, obj in [("scd", scd), ("sct", sct)]
              for label, f in [("exact", net), ("perturbed", shifted(net))]}
    assert losses["scd", "exact"] < 1e-6, losses
    assert losses["scd", "perturbed"] > 1e-3, losses
    assert losses["sct", "perturbed"] > losses["sct", "exact"], losses


@pytest.mark.parametrize("name, nfe", [("mean_flow", 1), ("mean_flow", 2), ("continuous_consistency", 1)])
def test_few_step_sampling_with_the_exact_networks_reproduces_the_mixture(name, nfe):
    n = 8000
    obj, net = {"mean_flow": (MeanFlow(), LINEAR.mean_flow_net()),
                "continuous_consistency": (ContinuousConsistency(sigma_data=SIGMA_D), TRIG.trigflow_net(SIGMA_D))}[name]
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = obj.sample_with_info(net, noise, nfe=nfe, generator=torch.Generator().manual_seed(6))
    assert out.nfe == nfe
    x = out.x0
    torch.testing.assert_close(x.mean(0), MIXTURE.mean(), atol=4 * float(MIXTURE.covariance().diagonal().max()) ** 0.5 / n**0.5, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), MIXTURE.covariance(), atol=0.04, rtol=0)
    # the mixture's shape, not only its moments: the mean log-density of the samples is the data's
    reference = MIXTURE.log_prob(data(n, seed=7))
    gap = float(MIXTURE.log_prob(x).mean() - reference.mean())
    assert abs(gap) < 4 * float(reference.std()) * (2 / n) ** 0.5, gap
    # a single Gaussian with the same moments would score lower (the check has power)
    gauss = GaussianMixture(MIXTURE.mean()[None], MIXTURE.covariance()[None]).sample(n, torch.Generator().manual_seed(8))[0]
    assert float(MIXTURE.log_prob(gauss).mean() - reference.mean()) < -8 * float(reference.std()) * (2 / n) ** 0.5
