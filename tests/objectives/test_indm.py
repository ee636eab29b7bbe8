"""INDM (Kim et al. 2022): with the identity flow it is the continuous VP objective with likelihood weighting
(closed form, same noise); its NELBO bounds the exact PF-ODE NLL in data space; flow and score train jointly;
and it refuses networks and data it cannot use, by name."""
import math

import pytest
import torch
from torch import nn

from lit_diffusion.backbones.flows import IdentityFlow, MultiscaleFlow, VectorFlow
from lit_diffusion.backbones.indm_network import INDMNetwork
from lit_diffusion.backbones.mlp import MLP
from lit_diffusion.evaluation.flow_likelihood import flow_bits_per_dim, flow_log_likelihood
from lit_diffusion.objectives import DDPM, GaussianMixture, UniformTime, oracle_network
from lit_diffusion.objectives.indm import INDM
from lit_diffusion.objectives.likelihood_weighting import LikelihoodWeighting, LogSNRUniformTime

TARGET = GaussianMixture([[0.5, -1.0]], [[[0.5, 0.1], [0.1, 0.3]]])


class Fn(nn.Module):
    """A closed-form 'network' as an nn.Module (INDMNetwork holds modules)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, t, cond=None):
        return self.fn(x, t, cond)


def _constants(obj, z):
    ends = torch.tensor([obj.t_min, 1.0], dtype=torch.float64)
    a, s = obj.path.alpha(ends), obj.path.sigma(ends)
    prior = 0.5 * float(a[1] / s[1]) ** 2 * z.pow(2).flatten(1).mean(1)
    return prior + 0.5 * math.log(2 * math.pi * math.e * float(s[0] / a[0]) ** 2)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_identity_flow_loss_is_the_continuous_vp_likelihood_weighted_loss(prediction):
    torch.manual_seed(0)
    score = MLP(dim=2, width=32, depth=2)
    eps = 1e-3
    indm = INDM(prediction=prediction, t_min=eps, importance_sampling=False)
    vp = DDPM(prediction=prediction, discrete=False, time_sampler=UniformTime(t_min=eps), weighting=LikelihoodWeighting())
    x = TARGET.sample(32, generator=torch.Generator().manual_seed(1))[0].float()
    ours = indm.loss_with_diagnostics(INDMNetwork(IdentityFlow(), score), x, generator=torch.Generator().manual_seed(2))
    theirs = vp.loss_with_diagnostics(score, x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(ours.t, theirs.t)
    # NELBO per dim = 1/2 (time-integral estimate: weight / uniform density 1/(1-eps)) + prior + reconstruction
    expected = 0.5 * (1 - eps) * theirs.loss + _constants(indm, x)
    assert torch.allclose(ours.loss, expected, rtol=1e-5, atol=1e-5)


def test_importance_sampled_weight_is_constant_in_eps_space():
    obj = INDM()  # t uniform in log-SNR: weight / density = lambda(t_min) - lambda(1) on the eps error
    score = MLP(dim=2, width=32, depth=2)
    x = torch.randn(64, 2)
    terms = obj.nelbo_terms(INDMNetwork(IdentityFlow(), score), x, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    t = obj.time_sampler.sample(64, obj.path, generator=g)
    noise = torch.randn(x.shape, generator=g)
    a, s = obj.path.alpha(t)[:, None], obj.path.sigma(t)[:, None]
    mse = (score(a * x + s * noise, t) - noise).pow(2).mean(1)
    span = float(obj.path.log_snr(torch.tensor(obj.t_min, dtype=torch.float64)) - obj.path.log_snr(torch.tensor(1.0, dtype=torch.float64)))
    assert torch.allclose(terms.diffusion, 0.5 * span * mse, rtol=1e-4, atol=1e-5)
    assert LogSNRUniformTime(1e-5).sample(1000, obj.path).min() >= 1e-5


def test_identity_flow_samples_are_the_continuous_vp_samples():
    torch.manual_seed(0)
    score = MLP(dim=2, width=32, depth=2)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    vp = DDPM(discrete=False, weighting=LikelihoodWeighting())
    for sampler, nfe in [("euler", 12), ("ddim", 10), ("heun", 9)]:
        ours = INDM().sample(INDMNetwork(IdentityFlow(), score), noise, sampler=sampler, nfe=nfe)
        theirs = vp.sample(score, noise, sampler=sampler, nfe=nfe)
        assert torch.equal(ours, theirs), sampler


def test_samples_are_the_inverse_flow_of_the_latent_samples():
    torch.manual_seed(0)
    flow, score = VectorFlow(2, layers=2, hidden=8), MLP(dim=2, width=32, depth=2)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    noise = torch.randn(8, 2)
    z = DDPM(discrete=False).sample(score, noise, sampler="euler", nfe=8)
    x = INDM().sample(INDMNetwork(flow, score), noise, sampler="euler", nfe=8)
    assert torch.allclose(x, flow.inverse(z), atol=1e-6)
    assert torch.allclose(flow(x)[0], z, atol=1e-5)


@pytest.mark.parametrize("case", ["exact-score", "other-gaussian-score", "other-gaussian-score-with-flow"])
def test_nelbo_upper_bounds_the_exact_pf_ode_nll_on_a_gaussian_target(case):
    """For a score that is the exact score of some diffused distribution (the target's, or another Gaussian's)
    the PF-ODE and the reverse SDE define the same model, and the NELBO bounds its NLL, tightly: the model's
    path posterior is the forward process (Song et al. 2021, Theorem 1 and sec. 4). Per point, in data space."""
    torch.manual_seed(0)
    obj = INDM()
    other = GaussianMixture([[1.5, 1.0]], [[[0.3, 0.0], [0.0, 0.6]]])
    score = Fn(oracle_network(TARGET if case == "exact-score" else other, obj))
    flow = IdentityFlow()
    if case.endswith("with-flow"):
        flow = VectorFlow(2, layers=2, hidden=8)
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(0.1 * torch.randn_like(p))
    net = INDMNetwork(flow, score).double()
    x = TARGET.sample(64, generator=torch.Generator().manual_seed(0))[0]
    log_p, _ = flow_log_likelihood(obj, net, x, exact=True)  # data space: log p_z(g(x)) + log|det|
    nll = -log_p / 2  # nats per dimension
    nelbo = obj.nelbo(net, x, draws=300, generator=torch.Generator().manual_seed(1))
    gap = nelbo - nll
    se = float(gap.std()) / 64**0.5
    assert float(gap.mean()) > -3 * se, (float(gap.mean()), se)
    assert abs(float(gap.mean())) < 4 * se + 0.02  # tight up to Monte Carlo error
    if case == "exact-score":  # and the PF-ODE NLL is the target's own
        assert torch.allclose(nll, -TARGET.log_prob(x) / 2, atol=0.01)
    else:
        assert float(nll.mean()) > float(-TARGET.log_prob(x).mean() / 2) + 0.3  # a clearly worse model


def test_for_any_score_the_nelbo_bounds_the_data_entropy():
    """With a score that is no distribution's score (0.8 x the exact eps) the NELBO bounds the reverse SDE's
    NLL, not the PF-ODE's; on average over data it still exceeds the data's own NLL (cross-entropy >= entropy)."""
    obj = INDM()
    exact = oracle_network(TARGET, obj)
    net = INDMNetwork(IdentityFlow(), Fn(lambda z, t, c: 0.8 * exact(z, t, c))).double()
    x = TARGET.sample(64, generator=torch.Generator().manual_seed(0))[0]
    nelbo = obj.nelbo(net, x, draws=100, generator=torch.Generator().manual_seed(1))
    assert float(nelbo.mean()) > float(-TARGET.log_prob(x).mean() / 2) + 0.1


def test_flow_and_score_train_jointly_and_bits_per_dim_are_in_data_space():
    torch.manual_seed(0)
    net = INDMNetwork(MultiscaleFlow(1, levels=1, steps=1, hidden=8), Fn(lambda x, t, c: 0.1 * x))
    x = torch.rand(4, 1, 4, 4) * 2 - 1
    INDM().loss(net, x, generator=torch.Generator().manual_seed(0)).mean().backward()
    actnorm = net.flow.blocks[0].layers[0].layers[0]  # gradients reach the flow (zero-initialised couplings
    assert actnorm.log_scale.grad.abs().sum() > 0  # pass them to their last layer only at the start)
    assert sum(int(p.grad is not None and p.grad.abs().sum() > 0) for p in net.flow.parameters()) >= 4
    bpd = flow_bits_per_dim(INDM(), net, x, exact=False, rtol=1e-3, atol=1e-3,
                            generator=torch.Generator().manual_seed(0))
    assert bpd.shape == (4,) and torch.isfinite(bpd).all()


def test_the_training_module_optimises_flow_and_score():
    from lit_diffusion.training.module import DiffusionModule

    net = INDMNetwork(VectorFlow(2, layers=2, hidden=8), MLP(dim=2, width=16, depth=1))
    module = DiffusionModule(net, INDM(), max_images=64)
    optimised = {id(p) for group in module.configure_optimizers().param_groups for p in group["params"]}
    assert {id(p) for p in net.flow.parameters()} <= optimised


def test_bad_networks_and_data_are_named():
    x = torch.randn(4, 1, 6, 6)
    with pytest.raises(TypeError, match="INDM needs an INDMNetwork"):
        INDM().loss(MLP(dim=2), torch.randn(4, 2))
    with pytest.raises(TypeError, match="flow must be"):
        INDMNetwork(nn.Identity(), MLP(dim=2))
    net = INDMNetwork(MultiscaleFlow(1, levels=2, steps=1, hidden=8), Fn(lambda z, t, c: z))
    with pytest.raises(ValueError, match="not invertible at image size"):
        INDM().loss(net, x)
    with pytest.raises(ValueError, match="not invertible at image size"):
        INDM().sample(net, x, nfe=2)
    with pytest.raises(ValueError, match="t_min"):
        INDM(t_min=0.0)
    with pytest.raises(ValueError, match="prediction"):
        INDM(prediction="score")


def test_lightning_fit_trains_the_flow_and_generates_in_data_space():
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from lit_diffusion.backbones import UNet
    from lit_diffusion.training.module import DiffusionModule

    torch.manual_seed(0)
    data = DataLoader([{"x": xi} for xi in torch.rand(32, 1, 8, 8) * 2 - 1], batch_size=16)
    score = UNet(in_channels=1, channels=8, channel_mult=[1], num_res_blocks=1, attention_levels=[], norm_groups=4)
    net = INDMNetwork(MultiscaleFlow(1, levels=1, steps=1, hidden=8), score)
    module = DiffusionModule(net, INDM(dequantize_bins=256), max_images=32, lr=1e-3)
    before = [p.detach().clone() for p in net.flow.parameters()]
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module, data)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.flow.parameters()))
    assert module.generate(torch.randn(2, 1, 8, 8), nfe=4).shape == (2, 1, 8, 8)
