"""PFGM++ (Xu et al. 2023, "PFGM++: Unlocking the Potential of Physics-Inspired Generative Models"): the
electrostatic field of the data in N + D dimensions, trained and sampled as EDM (Karras et al. 2022) through the
alignment r = sigma sqrt(D) (their sec. 4), with D -> infinity recovering EDM itself.

The perturbation kernel (their eq. 6) is p_r(x | y) proportional to (||x - y||^2 + r^2)^(-(N + D) / 2): x = y + R u
with u uniform on the unit N-sphere and R^2 / (R^2 + r^2) ~ Beta(N/2, D/2) (their Alg. 2), i.e.
R = r sqrt(b / (1 - b)). With b = G_N / (G_N + G_D), G_k ~ Gamma(k / 2), and G_N = ||z||^2 / 2 for z ~ N(0, I_N)
(independent of u = z / ||z||), R u = r z / sqrt(2 G_D) = sigma z sqrt(D / chi2_D): the kernel is a multivariate
Student t with D degrees of freedom and scale sigma. So a standard normal draw z plus one chi-square per sample
gives the paper's kernel exactly, and samples keep the house's shared per-index normal noise.

Time: EDM's noise grid, as the consistency objectives map it (paths.EDMSigmaPath: t = 0 is sigma_min, t = 1 is
sigma_max, a uniform grid in t is Karras' rho-spaced grid). The ODE in sigma is EDM's, dx/dsigma = (x - D(x,
sigma)) / sigma, with D the denoiser learned under this kernel (their sec. 4, eq. 10 with dr = sqrt(D) dsigma), so
the house samplers integrate it unchanged; only the prior differs: the kernel at r_max = sigma_max sqrt(D).
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data
from lit_diffusion.objectives.parameterisation import EDMPreconditioning
from lit_diffusion.objectives.paths import EDMSigmaPath
from lit_diffusion.objectives.time_samplers import LogNormalSigma, TimeSampler
from lit_diffusion.objectives.weightings import EDMWeighting, Weighting


def checked_augmented_dims(D) -> int | None:
    """D as an int >= 3 (E[R^2] = r^2 N / (D - 2) is finite only for D > 2), or None for D -> infinity."""
    if D is None:
        return None
    if isinstance(D, float) and math.isinf(D) and D > 0:
        return None
    valid = isinstance(D, (int, float)) and not isinstance(D, bool) and math.isfinite(D) and D == int(D) and D >= 3
    if not valid:
        raise ValueError(f"PFGM++: D must be an integer >= 3 (the paper uses 64 .. 2048) or None for D -> infinity "
                         f"(EDM), got {D!r}")
    return int(D)


def standard_gamma(concentration: float, n: int, generator=None, device=None) -> torch.Tensor:
    """n draws of Gamma(concentration, 1), concentration >= 1, float64, from `generator` (torch.distributions
    takes none). Marsaglia & Tsang 2000, "A simple method for generating gamma variables", sec. 6: with
    d = a - 1/3, c = 1 / sqrt(9 d), v = (1 + c z)^3 for z ~ N(0, 1), accept d v when
    log U < z^2 / 2 + d - d v + d log v (acceptance above 95% for a >= 1)."""
    if concentration < 1:
        raise ValueError(f"standard_gamma: concentration must be >= 1, got {concentration}")
    d = concentration - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(n, dtype=torch.float64, device=device)
    todo = torch.arange(n, device=device)
    while todo.numel() > 0:
        z = torch.randn(todo.numel(), generator=generator, dtype=torch.float64, device=device)
        u = torch.rand(todo.numel(), generator=generator, dtype=torch.float64, device=device)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    return out


def kernel_noise(noise: torch.Tensor, D: int | None, generator=None) -> torch.Tensor:
    """The kernel's perturbation at sigma = 1 from standard normal `noise` (B, ...): noise sqrt(D / chi2_D) per
    sample (see the module docstring); x = y + sigma * kernel_noise(...) is then the paper's y + R u with
    r = sigma sqrt(D). D None: the noise itself (EDM's Gaussian kernel)."""
    if D is None:
        return noise
    chi2 = 2.0 * standard_gamma(D / 2.0, noise.shape[0], generator, noise.device)
    scale = torch.sqrt(D / chi2).to(noise.dtype)
    return noise * scale.reshape((-1,) + (1,) * (noise.ndim - 1))


class PFGMPP(DiffusionObjective):
    """Args:
        D: the augmented dimensions, an integer >= 3 (the paper: 128 .. 2048 on CIFAR-10, N = 3072), or None for
            D -> infinity, which is EDM (Gaussian kernel) exactly (float('inf') too; the type admits floats so that a
            non-integer D is told what is valid rather than rejected by the parser's type check).
        sigma_min, sigma_max, rho: EDM's noise grid (t -> sigma, t = 0 data, t = 1 noise); r = sigma sqrt(D).
        sigma_data: EDM's preconditioning and loss weight (their sec. 4 keeps both; Karras et al. 2022, Table 1).
        time_sampler / weighting: override EDM's log-normal sigma (P_mean -1.2, P_std 1.2) and lambda(sigma).
    `loss(..., noise=)` and `sample(net, noise)` take standard normal noise and turn it into the kernel's draw with
    one chi-square per sample from `generator`; `prior(noise)` scales noise that already is the kernel's.
    """

    # EDM's sampler: Heun on the rho = 7 grid, 18 steps = 35 evaluations (Karras et al. 2022, sec. 3)
    default_sampler = "heun"
    default_nfe = 35

    def __init__(self, D: int | float | None = 128, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 sigma_data: float = 0.5, time_sampler: TimeSampler | None = None, weighting: Weighting | None = None,
                 label_dropout: float = 0.0, null_label: int | None = None):
        self.D = checked_augmented_dims(D)
        super().__init__(EDMSigmaPath(sigma_min, sigma_max, rho), EDMPreconditioning(sigma_data),
                         time_sampler or LogNormalSigma(-1.2, 1.2), weighting or EDMWeighting(sigma_data),
                         label_dropout, null_label)

    def kernel_noise(self, noise: torch.Tensor, generator=None) -> torch.Tensor:
        return kernel_noise(noise, self.D, generator)

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        """EDM's loss on x = y + sigma * kernel_noise (their Alg. 2): the denoiser regresses y at sigma = r / sqrt(D)."""
        if self.D is not None:
            x0 = checked_data(x0)
            if noise is None:
                noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            noise = self.kernel_noise(noise, generator)
        return super().loss_with_diagnostics(net, x0, cond, generator=generator, noise=noise)

    def sample_with_info(self, net, noise, *args, generator=None, **kwargs):
        """From the kernel at r_max = sigma_max sqrt(D) around 0 (their sec. 4: the prior p_{r_max}), drawn with
        `generator`, along EDM's ODE with the learned denoiser."""
        return super().sample_with_info(net, self.kernel_noise(noise, generator), *args, generator=generator, **kwargs)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, D={self.D})"
