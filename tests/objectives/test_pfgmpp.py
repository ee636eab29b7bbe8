"""PFGM++ (objectives/pfgmpp.py) against closed forms: the perturbation kernel's radius law (R^2 / (R^2 + r^2) ~
Beta(N/2, D/2)) and moments (E[R^2] = r^2 N / (D - 2)), its D -> infinity limit (EDM's Gaussian: R / sigma ~ chi_N),
D = None as EDM exactly, training and sampling through the kernel (the prior at r_max), and the probability-flow
ODE in sigma carrying the exact PFGM++ marginal of a point-mass data set (closed-form denoiser) from one noise level
to another. Bad D: one line through the real CLI."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scipy import stats

from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives import PFGMPP, make_objective
from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.objectives.parameterisation import EDMPreconditioning
from lit_diffusion.objectives.paths import EDMSigmaPath
from lit_diffusion.objectives.pfgmpp import kernel_noise
from lit_diffusion.objectives.time_samplers import LogNormalSigma
from lit_diffusion.objectives.weightings import EDMWeighting
from lit_diffusion.samplers import heun_step

REPO = Path(__file__).resolve().parents[2]


def perturbations(n: int, N: int, D, sigma: float, seed: int = 0) -> torch.Tensor:
    """x - y for n draws of the kernel at sigma (r = sigma sqrt(D)), float64."""
    g = torch.Generator().manual_seed(seed)
    return sigma * kernel_noise(torch.randn(n, N, generator=g, dtype=torch.float64), D, g)


@pytest.mark.parametrize("N,D", [(3, 5), (16, 64)])
def test_the_radius_follows_the_papers_beta_law_and_the_direction_is_uniform(N, D):
    sigma = 1.7
    x = perturbations(20000, N, D, sigma)
    R2 = x.pow(2).sum(1)
    b = R2 / (R2 + sigma**2 * D)  # Xu et al. 2023, Alg. 2: R^2 / (R^2 + r^2) ~ Beta(N/2, D/2)
    assert stats.kstest(b.numpy(), stats.beta(N / 2, D / 2).cdf).pvalue > 1e-3
    # the same test rejects EDM's Gaussian perturbation at this D: it has power
    gauss = perturbations(20000, N, None, sigma).pow(2).sum(1)
    assert stats.kstest((gauss / (gauss + sigma**2 * D)).numpy(), stats.beta(N / 2, D / 2).cdf).pvalue < 1e-6
    u = x / R2.sqrt()[:, None]  # uniform on the sphere: mean 0, second moment I / N
    assert u.mean(0).abs().max() < 4 / math.sqrt(20000)
    assert torch.allclose(u.T @ u / 20000, torch.eye(N, dtype=torch.float64) / N, atol=4 / N / math.sqrt(20000) * 3)


@pytest.mark.parametrize("D", [8, 64, 2048])
def test_second_moment_is_r2_N_over_D_minus_2(D):
    # E[R^2] = r^2 E[b / (1 - b)] = r^2 (N/2) / (D/2 - 1) = r^2 N / (D - 2), i.e. N sigma^2 D / (D - 2)
    N, sigma = 4, 0.8
    R2 = perturbations(40000, N, D, sigma).pow(2).sum(1)
    expected = sigma**2 * D * N / (D - 2)
    assert abs(float(R2.mean()) - expected) < 4 * float(R2.std()) / math.sqrt(R2.numel())


def test_large_D_is_edms_gaussian():
    N, sigma = 6, 2.0
    R = perturbations(20000, N, 10**6, sigma).pow(2).sum(1).sqrt() / sigma
    assert stats.kstest(R.numpy(), stats.chi(N).cdf).pvalue > 1e-3
    small = perturbations(20000, N, 8, sigma).pow(2).sum(1).sqrt() / sigma
    assert stats.kstest(small.numpy(), stats.chi(N).cdf).pvalue < 1e-6  # a small D is not Gaussian


def test_D_none_is_edm_exactly():
    """Loss and samples bit for bit those of EDM composed from the house pieces (Karras et al. 2022, Table 1)."""
    edm = DiffusionObjective(EDMSigmaPath(0.002, 80.0, 7.0), EDMPreconditioning(0.5), LogNormalSigma(-1.2, 1.2),
                             EDMWeighting(0.5))
    pfgm = make_objective("pfgmpp", D=None)
    assert make_objective("pfgmpp", D=float("inf")).D is None
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3))
    call = lambda x, t, cond=None: net(x) * (1 + t[:, None])  # noqa: E731
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    losses = [o.loss(call, x0, generator=torch.Generator().manual_seed(2)) for o in (edm, pfgm)]
    assert torch.equal(*losses)
    noise = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    samples = [o.sample(call, noise, sampler="heun", nfe=9, generator=torch.Generator().manual_seed(4))
               for o in (edm, pfgm)]
    assert torch.equal(*samples)


def denoiser_net(objective, denoise):
    """A network whose output, read through the objective's preconditioning, is `denoise(x, sigma)`."""
    def net(x_in, t, cond=None):
        c = PathCoefficients.at(objective.path, t, x_in)
        x = x_in / objective.parameterisation.net_input(torch.ones_like(x_in), c)
        x0 = denoise(x, c.sigma)
        return objective.parameterisation.target(Prediction(x0, (x - x0) / c.sigma), x, c)
    return net


def test_training_perturbs_with_the_kernel():
    """The network sees c_in (y + sigma n) with E||n||^2 / N = D / (D - 2) (Gaussian: 1)."""
    D, N = 5, 4
    objective = make_objective("pfgmpp", D=D)
    seen = []

    def net(x_in, t, cond=None):
        c = PathCoefficients.at(objective.path, t, x_in)
        seen.append(x_in / objective.parameterisation.net_input(torch.ones_like(x_in), c) / c.sigma)
        return torch.zeros_like(x_in)

    objective.loss(net, torch.zeros(20000, N), generator=torch.Generator().manual_seed(0))
    n2 = seen[0].double().pow(2).sum(1) / N
    assert abs(float(n2.mean()) - D / (D - 2)) < 4 * float(n2.std()) / math.sqrt(n2.numel())


def test_sampling_starts_from_the_kernel_at_r_max():
    """With data at the origin the exact denoiser is 0 and the ODE dx/dsigma = x / sigma is solved exactly by Euler:
    x(sigma_min) = x(sigma_max) sigma_min / sigma_max, so a sample reveals its prior: the kernel at r_max drawn
    from the caller's generator (E||x||^2 = N sigma_max^2 D / (D - 2))."""
    D, N = 6, 3
    objective = make_objective("pfgmpp", D=D)
    net = denoiser_net(objective, lambda x, sigma: torch.zeros_like(x))
    noise = torch.randn(20000, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = objective.sample(net, noise, sampler="euler", nfe=3, generator=torch.Generator().manual_seed(5))
    prior = x * (80.0 / 0.002)
    expected = 80.0 * kernel_noise(noise, D, torch.Generator().manual_seed(5))
    assert torch.allclose(prior, expected, rtol=1e-9)
    r2 = prior.pow(2).sum(1) / (N * 80.0**2)
    assert abs(float(r2.mean()) - D / (D - 2)) < 4 * float(r2.std()) / math.sqrt(r2.numel())


def point_mass_denoiser(points: torch.Tensor, weights: torch.Tensor, D):
    """E[y | x] for data sum_i w_i delta(y_i) under the kernel: w_i (||x - y_i||^2 + r^2)^(-(N + D) / 2)
    normalised (Xu et al. 2023, eq. 6), r = sigma sqrt(D); D None: the Gaussian posterior weights."""
    N = points.shape[1]

    def denoise(x, sigma):
        d2 = (x.double()[:, None, :] - points[None]).pow(2).sum(-1)  # (B, K)
        s = sigma.double().reshape(-1, 1)
        if D is None:
            logits = -d2 / (2 * s**2)
        else:
            logits = -(N + D) / 2 * torch.log(d2 + s**2 * D)
        w = torch.softmax(logits + torch.log(weights)[None], dim=1)
        return (w @ points).to(x.dtype)
    return denoise


@pytest.mark.parametrize("field_D", [6, None])
def test_the_ode_in_sigma_carries_the_pfgmpp_marginal(field_D):
    """Exact samples of the PFGM++ marginal at sigma = 3 (D = 6, two points), integrated with Heun along
    dx/dsigma = (x - D(x, sigma)) / sigma with the exact denoiser to sigma = 0.4, match the exact marginal there
    in E||x||^2 = sum w_i ||y_i||^2 + N sigma^2 D / (D - 2) and in the mass on each side; EDM's Gaussian
    denoiser in place of the kernel's (field_D None) misses it."""
    D, n = 6, 20000
    points = torch.tensor([[-1.0, 0.0], [1.5, 0.5]], dtype=torch.float64)
    weights = torch.tensor([0.3, 0.7], dtype=torch.float64)
    objective = make_objective("pfgmpp", D=D)
    g = torch.Generator().manual_seed(0)
    y = points[torch.multinomial(weights, n, replacement=True, generator=g)]
    x = y + 3.0 * kernel_noise(torch.randn(n, 2, generator=g, dtype=torch.float64), D, g)
    predict = objective.predictor(denoiser_net(objective, point_mass_denoiser(points, weights, field_D)))
    ts = objective.path.t_from_noise_ratio(torch.tensor([3.0, 0.4], dtype=torch.float64))
    grid = torch.linspace(float(ts[0]), float(ts[1]), 41, dtype=torch.float64).tolist()
    for t, s in zip(grid, grid[1:]):
        x = heun_step(objective.path, predict, x, t, s)
    r2 = x.pow(2).sum(1)
    expected = float((weights * points.pow(2).sum(1)).sum()) + 2 * 0.4**2 * D / (D - 2)
    exact = y + 0.4 * kernel_noise(torch.randn(n, 2, generator=g, dtype=torch.float64), D, g)
    near_first = lambda z: float(((z - points[0]).norm(dim=1) < (z - points[1]).norm(dim=1)).double().mean())  # noqa: E731
    ok = (abs(float(r2.mean()) - expected) < 4 * float(r2.std()) / math.sqrt(n)
          and abs(near_first(x) - near_first(exact)) < 4 * math.sqrt(0.3 * 0.7 / n) * math.sqrt(2))
    assert ok == (field_D == D), (float(r2.mean()), expected, near_first(x), near_first(exact))


@pytest.mark.parametrize("D", [2, 0, -4, 2.5, True, "many", float("nan"), float("-inf")])
def test_a_bad_D_is_refused_with_what_is_valid(D):
    with pytest.raises(ValueError, match=r"D must be an integer >= 3 .* or None for D -> infinity"):
        PFGMPP(D=D)


def test_a_bad_D_through_the_cli_is_one_line(tmp_path, digits_shards):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "lit_diffusion.cli", "fit", "-c", str(REPO / "experiments/digits/unet.yaml"),
         "-c", str(REPO / "experiments/objectives/pfgmpp.yaml"), "--model.objective.init_args.D", "2.5",
         "--data.train_shards", str(digits_shards), "--trainer.accelerator", "cpu",
         "--trainer.default_root_dir", str(tmp_path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "D must be an integer >= 3" in errors[0] and "got 2.5" in errors[0], proc.stderr
