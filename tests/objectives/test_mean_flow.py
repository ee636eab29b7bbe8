"""MeanFlow against the closed form: for Gaussian data the PF-ODE flow map keeps each coordinate's
standardised value, so the exact average velocity u(z, r, t) is known (objectives/flow_map_oracle.py)."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.objectives import GaussianMixture, RectifiedFlow, oracle_network
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap
from lit_diffusion.objectives.mean_flow import MeanFlow
from lit_diffusion.objectives.paths import LinearPath

MEAN, STD = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
ORACLE = GaussianFlowMap(MEAN, STD, LinearPath())


def data(n, seed=0):
    return MEAN + STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def perturbed(net, scale=1.1, shift=0.05):
    return lambda z, t, cond=None, r=None: scale * net(z, t, cond, r=r) + shift


def test_meanflow_identity_holds_exactly_for_the_exact_average_velocity():
    obj, net = MeanFlow(ratio=1.0), ORACLE.mean_flow_net()
    g = torch.Generator().manual_seed(1)
    r, t = (v.double() for v in obj.sample_times(512, g))
    z = (1 - t)[:, None] * data(512) + t[:, None] * torch.randn(512, 2, generator=g, dtype=torch.float64)
    v = ORACLE.velocity(z, t)  # the marginal (PF-ODE) velocity
    u, u_tgt = obj.target(net, z, r, t, v, None)
    assert float((u - u_tgt).abs().max()) < 1e-8
    u, u_tgt = obj.target(perturbed(net), z, r, t, v, None)
    assert float((u - u_tgt).abs().max()) > 1e-2


def test_loss_vanishes_at_the_exact_network_and_grows_when_perturbed():
    # with the exact velocity as teacher (distillation) the loss is zero; with the conditional velocity it
    # is the irreducible variance, minimal at the exact network
    teacher = RectifiedFlow()
    mixture = GaussianMixture(MEAN[None], torch.diag(STD**2)[None])
    distil = MeanFlow(ratio=0.5, adaptive_p=0.0, teacher=teacher, teacher_net=oracle_network(mixture, teacher))
    plain = MeanFlow(ratio=0.5, adaptive_p=0.0)
    net, x0 = ORACLE.mean_flow_net(), data(4096)
    losses = {}
    for name, obj in [("distil", distil), ("plain", plain)]:
        for label, f in [("exact", net), ("perturbed", perturbed(net))]:
            losses[name, label] = float(obj.loss(f, x0, generator=torch.Generator().manual_seed(3)).mean())
    assert losses["distil", "exact"] < 1e-10
    assert losses["distil", "perturbed"] > 1e-3
    assert losses["plain", "perturbed"] > losses["plain", "exact"] + 1e-3


@pytest.mark.parametrize("nfe", [1, 2])
def test_sampling_with_the_exact_network_reproduces_mean_and_covariance(nfe):
    obj, n = MeanFlow(), 20_000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = obj.sample_with_info(ORACLE.mean_flow_net(), noise, nfe=nfe)
    assert out.nfe == nfe
    torch.testing.assert_close(out.x0.mean(0), MEAN, atol=4 * float(STD.max()) / n**0.5, rtol=0)
    torch.testing.assert_close(torch.cov(out.x0.T), torch.diag(STD**2), atol=0.06, rtol=0.03)


def test_bad_input_is_named():
    obj = MeanFlow()
    with pytest.raises(ValueError, match="r must not exceed t"):
        obj.average_velocity(ORACLE.mean_flow_net(), torch.zeros(2, 2), 0.9, 0.5)
    with pytest.raises(ValueError, match="second time input r.*second_time=True"):
        obj.loss(MLP(2, 16, 1), torch.randn(4, 2))
    with pytest.raises(ValueError, match="second time input r"):
        obj.loss(lambda x, t, cond=None: x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="ratio"):
        MeanFlow(ratio=1.5)


def _moment_error(x):
    return float((x.mean(0).double() - MEAN).abs().sum() + (x.std(0).double() - STD).abs().sum())


def test_meanflow_trains_in_a_plain_loop_on_its_defaults():
    torch.manual_seed(0)
    net, obj = MLP(2, 64, 2, second_time=True), MeanFlow()
    noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(9))
    untrained = _moment_error(obj.sample(net, noise))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        loss = obj.loss(net, data(256, seed=int(torch.randint(0, 10**6, (1,), generator=g))).float(), generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _moment_error(obj.sample(net, noise)) < 0.5 * untrained  # 1 step, default sampler


def official_v1_times(batch, generator, ratio=0.75, t_dist=(-0.6, 1.6), r_dist=(-4.0, 1.6)):
    """The official PyTorch MeanFlow code's (t, r) for CIFAR-10 (py-meanflow models/time_sampler.py,
    sample_two_timesteps_t_r_v1, with its cifar10 script's P_mean/P_std), written out from its steps:
    t and r from their own logit-normals, r = t where u < 1 - ratio, then r = min(t, r). The normal draws are
    float64 as the project's time samplers draw them (the official code draws float32; the rule is the same)."""
    t = torch.sigmoid(t_dist[0] + t_dist[1] * torch.randn(batch, generator=generator, dtype=torch.float64)).float()
    r = torch.sigmoid(r_dist[0] + r_dist[1] * torch.randn(batch, generator=generator, dtype=torch.float64)).float()
    u = torch.rand(batch, generator=generator)
    r = torch.where(u < 1 - ratio, t, r)
    return torch.minimum(t, r), t


def cifar10_meanflow(**kwargs):
    from lit_diffusion.objectives import LogitNormalTime

    return MeanFlow(ratio=0.75, time_sampler=LogitNormalTime(-0.6, 1.6), second_time_sampler=LogitNormalTime(-4.0, 1.6),
                    pairing="clipped", adaptive_p=0.75, **kwargs)


def test_clipped_pairing_with_its_own_r_distribution_is_the_official_cifar10_sampler():
    """Same generator, same draws: (r, t) equal the official rule's exactly. Before, r could only be drawn like t
    and sorted ("sorted" pairing), so 0% of these pairs matched."""
    got_r, got_t = cifar10_meanflow().sample_times(4096, torch.Generator().manual_seed(7))
    want_r, want_t = official_v1_times(4096, torch.Generator().manual_seed(7))
    assert torch.equal(got_t, want_t) and torch.equal(got_r, want_r)
    # the share with r != t: ratio * P(r draw < t draw), near 0.75 * 0.93 with r centred at sigmoid(-4) = 0.018
    apart = (got_r < got_t).float().mean()
    assert 0.65 < float(apart) < 0.73 and bool((got_r <= got_t).all())


def test_the_default_pairing_is_unchanged():
    """sorted: two draws of t's distribution, t = max, r = min, r = t unless u < ratio (the paper's Sec. 4.3)."""
    g = torch.Generator().manual_seed(3)
    a = torch.sigmoid(-0.4 + torch.randn(512, generator=g, dtype=torch.float64)).float()
    b = torch.sigmoid(-0.4 + torch.randn(512, generator=g, dtype=torch.float64)).float()
    keep = torch.rand(512, generator=g) < 0.25
    r, t = MeanFlow().sample_times(512, torch.Generator().manual_seed(3))
    assert torch.equal(t, torch.maximum(a, b))
    assert torch.equal(r, torch.where(keep, torch.minimum(a, b), torch.maximum(a, b)))


def test_an_unknown_pairing_is_refused():
    with pytest.raises(ValueError, match="unknown pairing 'zip'; choose 'sorted'"):
        MeanFlow(pairing="zip")


def build_from_config(spec):
    """A class_path / init_args tree instantiated as the CLI's config does (nested specs first)."""
    import importlib

    if isinstance(spec, dict) and "class_path" in spec:
        module, _, name = spec["class_path"].rpartition(".")
        args = {k: build_from_config(v) for k, v in spec.get("init_args", {}).items()}
        return getattr(importlib.import_module(module), name)(**args)
    return spec


def test_the_cifar10_config_builds_the_official_sampler():
    """experiments/objectives/mean_flow_cifar10.yaml (parsed against the typed signatures by
    tests/test_experiment_configs.py) draws what the official rule draws."""
    from pathlib import Path

    import yaml

    config = Path(__file__).resolve().parents[2] / "experiments" / "objectives" / "mean_flow_cifar10.yaml"
    objective = build_from_config(yaml.safe_load(config.read_text())["model"]["objective"])
    assert (objective.ratio, objective.pairing, objective.adaptive_p, objective.adaptive_c) == (0.75, "clipped", 0.75, 1e-3)
    got = objective.sample_times(1024, torch.Generator().manual_seed(11))
    want = official_v1_times(1024, torch.Generator().manual_seed(11))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
