"""Two-dimensional toy distributions for quick experiments and tests (pure torch, no download). Each is scaled to
about unit spread; TOY_DATASETS lists them (the robustness suite, compare/toy2d_robustness.py, runs over all)."""
from __future__ import annotations

import functools
import math

import torch

from lit_diffusion.objectives.analytic import GaussianMixture


@functools.cache  # built once: sample_toy draws from it every training step
def eight_gaussians(radius: float = 1.0, std: float = 0.1) -> GaussianMixture:
    """Eight equal isotropic Gaussians on a circle: a mixture with a closed-form density and denoiser."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return GaussianMixture.isotropic(radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1), std)


@functools.cache
def ring_and_center(modes: int = 8, radius: float = 1.0, ring_std: float = 0.05, center_std: float = 0.3,
                    center_weight: float = 0.2) -> GaussianMixture:
    """A ring of narrow Gaussian modes around one wide central mode (widths 0.05 and 0.3: two scales at once)."""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    ring = radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    means = torch.cat([ring, torch.zeros(1, 2, dtype=torch.float64)])
    stds = torch.tensor([ring_std] * modes + [center_std], dtype=torch.float64)
    covs = stds[:, None, None] ** 2 * torch.eye(2, dtype=torch.float64)
    weights = torch.tensor([(1 - center_weight) / modes] * modes + [center_weight], dtype=torch.float64)
    return GaussianMixture(means, covs, weights)


def two_moons(n: int, noise: float = 0.05, generator=None) -> torch.Tensor:
    """Two interleaved half circles (as scikit-learn's make_moons), centred and scaled to about unit spread."""
    half = n // 2
    a = math.pi * torch.rand(half, generator=generator, dtype=torch.float64)
    b = math.pi * torch.rand(n - half, generator=generator, dtype=torch.float64)
    upper = torch.stack([torch.cos(a), torch.sin(a)], 1)
    lower = torch.stack([1 - torch.cos(b), 0.5 - torch.sin(b)], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return ((x - torch.tensor([0.5, 0.25], dtype=torch.float64)) / 0.9).float()


def checkerboard(n: int, cells: int = 4, generator=None) -> torch.Tensor:
    """Uniform on the black cells of a cells x cells board over [-1.5, 1.5]^2: sharp edges, no smooth density."""
    col = torch.randint(0, cells, (n,), generator=generator)
    row = 2 * torch.randint(0, cells // 2, (n,), generator=generator) + col % 2  # the cells with row + col even
    cell = torch.stack([col, row], 1).double() + torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return (3.0 * cell / cells - 1.5).float()


def spirals(n: int, noise: float = 0.03, generator=None) -> torch.Tensor:
    """Two interleaved arms of an Archimedean spiral (1.5 turns each): thin curved manifolds."""
    s = torch.rand(n, generator=generator, dtype=torch.float64).sqrt()  # uniform along the arm's area
    arm = torch.randint(0, 2, (n,), generator=generator).double()
    angle = 3 * math.pi * s + math.pi * arm
    x = 1.2 * s[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return (x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def student_t_mixture(n: int, df: int = 3, scale: float = 0.1, generator=None) -> torch.Tensor:
    """Four modes on the diagonals with Student-t noise (df 3: finite variance, heavy tails)."""
    means = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2)
    k = torch.randint(0, 4, (n,), generator=generator)
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    chi2 = torch.randn(n, df, generator=generator, dtype=torch.float64).pow(2).sum(1)  # chi-squared with df dof
    return (means[k] + scale * z / (chi2 / df).sqrt()[:, None]).float()


def _mixture(build):
    return lambda n, generator=None: build().sample(n, generator=generator)[0].float()


SAMPLERS = {
    "eight_gaussians": _mixture(eight_gaussians),
    "ring_and_center": _mixture(ring_and_center),
    "checkerboard": checkerboard,
    "two_moons": two_moons,
    "spirals": spirals,
    "student_t": student_t_mixture,
}
TOY_DATASETS = tuple(SAMPLERS)


def sample_toy(name: str, n: int, generator=None) -> torch.Tensor:
    """n float32 samples of the named toy distribution (one of TOY_DATASETS)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown toy distribution {name!r}; known: {list(TOY_DATASETS)}")
    return SAMPLERS[name](n, generator=generator)
