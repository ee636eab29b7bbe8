"""sCM (ContinuousConsistency) against the closed form on Gaussian data, TrigFlow conversions, and a plain loop."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.contract import PathCoefficients
from lit_diffusion.objectives import FlowMatching, GaussianMixture, RectifiedFlow, oracle_network
from lit_diffusion.objectives.continuous_consistency import ContinuousConsistency
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap
from lit_diffusion.objectives.paths import LinearPath, VPCosinePath
from lit_diffusion.objectives.teacher import translated_predictor
from lit_diffusion.objectives.trigflow import TrigFlowParameterisation, TrigFlowPath

MEAN, STD = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
SIGMA_D = 0.5
ORACLE = GaussianFlowMap(MEAN, STD, TrigFlowPath(SIGMA_D))
MIXTURE = GaussianMixture(MEAN[None], torch.diag(STD**2)[None])


def data(n, seed=0):
    return MEAN + STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def perturbed(net):
    return lambda x, t, cond=None: 1.1 * net(x, t, cond) + 0.05


def test_trigflow_path_and_parameterisation_are_exact():
    path, p = TrigFlowPath(SIGMA_D), TrigFlowParameterisation(SIGMA_D)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(path.t_from_noise_ratio(path.noise_ratio(t)), t)
    torch.testing.assert_close(path.alpha(t) ** 2 + (path.sigma(t) / SIGMA_D) ** 2, torch.ones_like(t))
    h = 1e-6  # derivatives
    torch.testing.assert_close(path.d_sigma(t), (path.sigma(t + h) - path.sigma(t - h)) / (2 * h))
    torch.testing.assert_close(path.d_alpha(t), (path.alpha(t + h) - path.alpha(t - h)) / (2 * h))
    x, raw = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 3, dtype=torch.float64)
    c = PathCoefficients.at(path, t, x)
    torch.testing.assert_close(p.target(p.to_prediction(raw, x, c), x, c), raw)
    # exact conversion to another path: the oracle's x0 through a teacher on the VP path is TrigFlow's
    fm = FlowMatching()
    for other in (LinearPath(), VPCosinePath()):
        fm.path = other
        pred = translated_predictor(fm, oracle_network(MIXTURE, fm), path)(x[:, :2], t)
        torch.testing.assert_close(pred.x0, MIXTURE.posterior_mean(x[:, :2], path.alpha(t), path.sigma(t)))


def test_loss_vanishes_at_the_exact_consistency_function_and_grows_when_perturbed():
    teacher = RectifiedFlow()
    scd = ContinuousConsistency(teacher=teacher, teacher_net=oracle_network(MIXTURE, teacher), warmup_steps=0)
    sct = ContinuousConsistency(warmup_steps=0)
    net, x0 = ORACLE.trigflow_net(SIGMA_D), data(4096)
    losses = {}
    for name, obj in [("scd", scd), ("sct", sct)]:
        for label, f in [("exact", net), ("perturbed", perturbed(net))]:
            losses[name, label] = float(obj.loss(f, x0, generator=torch.Generator().manual_seed(3)).mean())
    assert losses["scd", "exact"] < 1e-10
    assert losses["scd", "perturbed"] > 1e-3
    assert losses["sct", "perturbed"] > losses["sct", "exact"]


@pytest.mark.parametrize("nfe", [1, 2])
def test_sampling_with_the_exact_network_reproduces_mean_and_covariance(nfe):
    obj, n = ContinuousConsistency(), 20_000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = obj.sample_with_info(ORACLE.trigflow_net(SIGMA_D), noise, nfe=nfe, generator=torch.Generator().manual_seed(6))
    assert out.nfe == nfe
    torch.testing.assert_close(out.x0.mean(0), MEAN, atol=4 * float(STD.max()) / n**0.5, rtol=0)
    torch.testing.assert_close(torch.cov(out.x0.T), torch.diag(STD**2), atol=0.06, rtol=0.03)


def test_tangent_warmup_follows_a_plain_loop_and_the_training_step():
    obj = ContinuousConsistency(warmup_steps=4, adaptive=False)
    net = MLP(2, 16, 1)
    for _ in range(2):
        obj.loss(net, torch.randn(8, 2))
    assert obj.tangent_warmup() == 0.5
    obj.set_training_step(8)
    assert obj.tangent_warmup() == 1.0
    with pytest.raises(ValueError, match="teacher"):
        ContinuousConsistency(teacher=RectifiedFlow())


def test_scm_trains_in_a_plain_loop_on_its_defaults():
    """Data scaled to about the default sigma_d = 0.5 (as images in [-1, 1]); warm-up shortened to the run;
    t embedded at scale 1 (Lu & Song 2024, Sec. 4.1: with 1000 t the time derivative swamps the JVP)."""
    torch.manual_seed(0)
    net, obj = MLP(2, 64, 2, time_scale=1.0), ContinuousConsistency(warmup_steps=50)
    noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(9))

    def error(x):
        return float((x.mean(0).double() - MEAN / 2).abs().sum() + (x.std(0).double() - STD / 2).abs().sum())

    untrained = error(obj.sample(net, noise))
    opt = torch.optim.Adam([*net.parameters(), *obj.parameters()], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        loss = obj.loss(net, data(256, seed=int(torch.randint(0, 10**6, (1,), generator=g))).float() / 2, generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert error(obj.sample(net, noise)) < 0.5 * untrained


def test_the_default_tangent_warmup_spans_a_fifth_of_the_run_or_10k_steps_without_progress():
    """Issue 32: a fixed 10k-step warm-up never finished in short runs (sCM 4x flow matching's 1-step SW1)."""
    obj = ContinuousConsistency(adaptive=False)
    obj.set_training_step(30, progress=0.1)
    assert obj.tangent_warmup() == pytest.approx(0.5)
    obj.set_training_step(60, progress=0.3)
    assert obj.tangent_warmup() == 1.0
    obj.set_training_step(2_500)  # a loop that knows no progress: the paper's 10k steps
    assert obj.tangent_warmup() == pytest.approx(0.25)
    no_warmup = ContinuousConsistency(warmup_share=0.0, adaptive=False)
    no_warmup.set_training_step(0, progress=0.0)
    assert no_warmup.tangent_warmup() == 1.0
    with pytest.raises(ValueError, match="warmup_share"):
        ContinuousConsistency(warmup_share=1.5)
