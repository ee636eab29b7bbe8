"""Sampler contract: exact NFE, guidance, Euler = DDIM(eta = 0), grids, and named errors for bad input."""
import pytest
import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.objectives import DDPM, FlowMatching, GaussianMixture, RectifiedFlow, make_objective, oracle_network
from lit_diffusion.objectives import make_time_sampler, make_weighting
from lit_diffusion.objectives.analytic import GaussianMixture as GM
from lit_diffusion.samplers import SAMPLERS, run_sampler, sample_ddim, sample_euler, time_grid

MIXTURE = GaussianMixture.isotropic([[-2.0, 0.0], [2.0, 1.0]], 0.5)


class CountingNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net, self.calls = MLP(2, 32, 1), 0

    def forward(self, x, t, cond=None):
        self.calls += 1
        return self.net(x, t, cond)


class CountingMeanFlowNet(CountingNet):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = MLP(2, 32, 1, second_time=True)

    def forward(self, x, t, cond=None, r=None):
        self.calls += 1
        return self.net(x, t, cond, r=r)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("objective", [DDPM(discrete=False), FlowMatching(), make_objective("consistency_training"),
                                       make_objective("mean_flow")], ids=["ddpm", "fm", "ct", "meanflow"])
def test_reported_nfe_is_the_number_of_network_calls(sampler, objective):
    mean_flow = type(objective).__name__ == "MeanFlow"
    if (sampler == "mean_flow") != mean_flow and (sampler == "mean_flow" or sampler == "adaptive"):
        pytest.skip("the mean_flow sampler needs an average-velocity network (MeanFlow); adaptive is covered above")
    if sampler == "shortcut":
        pytest.skip("the shortcut sampler needs a ShortcutModel at a power-of-two NFE: tests/objectives/test_shortcut.py")
    # (continuous DDPM: the discrete path's 1000 kinks make an adaptive solver crawl, by design)
    net = CountingMeanFlowNet() if mean_flow else CountingNet()
    out = objective.sample_with_info(net, torch.randn(4, 2), sampler=sampler, nfe=7,
                                     generator=torch.Generator().manual_seed(0))
    assert out.nfe == net.calls
    if sampler not in ("heun", "adaptive"):
        assert out.nfe == 7
    if sampler == "heun":
        assert out.nfe in (6, 7)


@pytest.mark.parametrize("name", ["ddpm", "flow_matching", "rectified_flow"])
def test_euler_equals_deterministic_ddim_on_every_path(name):
    objective = make_objective(name)
    predict = objective.predictor(oracle_network(MIXTURE, objective))
    x = torch.randn(32, 2, dtype=torch.float64)
    grid = time_grid("uniform", 12, objective.path)
    torch.testing.assert_close(sample_euler(objective.path, predict, x, grid).x0,
                               sample_ddim(objective.path, predict, x, grid).x0)


@pytest.mark.parametrize("kind", ["edm", "logsnr"])
def test_spaced_grids_stay_in_edms_noise_range(kind):
    """Interior points have sigma/alpha in [0.002, 80] (Karras et al. 2022); the path's ends beyond that are
    reached directly: FM starts at t = 1 (ratio inf), and steps from ratio 0.002 to t = 0 (ratio 1e-4)."""
    path = FlowMatching(sigma_min=1e-4).path
    for steps in (2, 3, 5, 12):
        grid = time_grid(kind, steps, path)
        ratios = path.noise_ratio(grid)
        assert len(grid) == steps + 1 and grid[0] == 1.0 and grid[-1] == 0.0
        assert bool(((ratios[1:-1] >= 0.002 - 1e-9) & (ratios[1:-1] <= 80.0)).all()), (steps, ratios.tolist())
        assert abs(float(ratios[-2]) - 0.002) < 1e-9
    # DDPM's discrete path ends at t = 1/1000 (ratio 0.01 > 0.002): no extra step, the spacing ends there
    ddpm = DDPM(discrete=True).path
    grid = time_grid(kind, 6, ddpm)
    assert grid[-2] == 1e-3 and grid[-1] == 0.0 and float(ddpm.noise_ratio(grid[1:2])) < 80.0
    if kind == "edm":  # rho = 7 spacing of the interior ratios, Karras et al. eq. 5
        r = ddpm.noise_ratio(grid[1:-1]) ** (1 / 7)
        steps_in_root = torch.cat([torch.tensor([80.0 ** (1 / 7)], dtype=torch.float64), r]).diff()
        torch.testing.assert_close(steps_in_root, torch.full_like(steps_in_root, float(steps_in_root[0])))


def test_edm_grid_on_the_edm_path_is_uniform_in_t():
    path = make_objective("consistency_training").path
    torch.testing.assert_close(time_grid("edm", 8, path), torch.linspace(1, 0, 9, dtype=torch.float64))


def _conditional_net(objective, null):
    """Oracle with labels: class k -> component k of MIXTURE, the null label -> the whole mixture."""
    parts = [GM(MIXTURE.means[k:k + 1], MIXTURE.covs[k:k + 1]) for k in range(2)]
    oracles = [oracle_network(p, objective) for p in parts] + [oracle_network(MIXTURE, objective)]

    def net(x, t, cond):
        outs = torch.stack([o(x, t) for o in oracles])  # (3, B, D)
        index = torch.where(cond == null, torch.full_like(cond, 2), cond)
        return outs[index, torch.arange(x.shape[0])]

    return net


def test_classifier_free_guidance_scales():
    objective = RectifiedFlow(null_label=2)
    net = _conditional_net(objective, null=2)
    noise = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cond = torch.ones(256, dtype=torch.long)
    conditional = objective.sample(net, noise, cond=cond, sampler="heun", nfe=33)
    unconditional = objective.sample(net, noise, cond=torch.full_like(cond, 2), sampler="heun", nfe=33)
    torch.testing.assert_close(objective.sample(net, noise, cond=cond, guidance=1.0, sampler="heun", nfe=33), conditional)
    torch.testing.assert_close(objective.sample(net, noise, cond=cond, guidance=0.0, sampler="heun", nfe=33), unconditional)
    # class 1 sits at (2, 1): guidance 3 pushes samples further from the other class than w = 1
    strong = objective.sample(net, noise, cond=cond, guidance=3.0, sampler="heun", nfe=33)
    assert float(strong[:, 0].mean()) > float(conditional[:, 0].mean()) + 0.1
    # an interval that contains no grid time means no guidance at all
    outside = objective.sample(net, noise, cond=cond, guidance=3.0, sampler="euler", nfe=4, guidance_interval=(0.1, 0.2))
    torch.testing.assert_close(outside, objective.sample(net, noise, cond=cond, sampler="euler", nfe=4))


def test_bad_input_errors_say_what_is_wrong():
    objective = FlowMatching()
    net = MLP(2, 16, 1)
    with pytest.raises(ValueError, match="unknown sampler 'rk4'"):
        objective.sample(net, torch.randn(2, 2), sampler="rk4")
    with pytest.raises(ValueError, match="nfe must be an integer >= 1, got 0"):
        objective.sample(net, torch.randn(2, 2), nfe=0)
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        objective.sample(net, torch.randn(2, 2), nfe=2.5)
    with pytest.raises(ValueError, match="sigma_min must lie in \\(0, 1\\), got 1.5"):
        FlowMatching(sigma_min=1.5)
    with pytest.raises(ValueError, match="network output shape \\(2, 3\\) does not match its input shape \\(2, 2\\)"):
        objective.loss(lambda x, t, c: torch.zeros(2, 3), torch.randn(2, 2))
    with pytest.raises(TypeError, match="network output dtype torch.float64 does not match input dtype torch.float32"):
        objective.loss(lambda x, t, c: torch.zeros(2, 2, dtype=torch.float64), torch.randn(2, 2))
    with pytest.raises(TypeError, match="not floating point"):
        objective.loss(lambda x, t, c: torch.zeros(2, 2, dtype=torch.long), torch.randn(2, 2))
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        objective.loss(net, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown objective 'gan'"):
        make_objective("gan")
    with pytest.raises(ValueError, match="unknown time sampler 'beta'"):
        make_time_sampler("beta")
    with pytest.raises(ValueError, match="unknown weighting 'p2'"):
        make_weighting("p2")
    with pytest.raises(ValueError, match="guidance != 1 needs class labels"):
        objective.sample(net, torch.randn(2, 2), guidance=2.0)
    with pytest.raises(ValueError, match="unknown time grid 'cosine'"):
        objective.sample(net, torch.randn(2, 2), grid="cosine")
    with pytest.raises(ValueError, match="must decrease strictly"):
        sample_euler(objective.path, objective.predictor(net), torch.randn(2, 2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="DDPM: prediction must be"):
        DDPM(prediction="score")
    # bf16 output (autocast) is accepted and upcast: objective math stays float32
    loss = objective.loss(lambda x, t, c: torch.zeros(2, 2, dtype=torch.bfloat16), torch.randn(2, 2))
    assert loss.dtype == torch.float32


def test_run_sampler_reaches_data_on_every_grid():
    objective = DDPM(discrete=False)
    for grid in ("uniform", "edm", "logsnr"):
        out = run_sampler("dpm++2m", objective.path, objective.predictor(oracle_network(MIXTURE, objective)),
                          torch.randn(512, 2, dtype=torch.float64), nfe=24, grid=grid)
        assert (out.x0.mean(0) - MIXTURE.mean()).abs().max() < 0.25, grid
