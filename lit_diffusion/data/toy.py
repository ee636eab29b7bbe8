"""Two-dimensional toy distributions for quick experiments and tests (pure torch, no download)."""
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


def two_moons(n: int, noise: float = 0.05, generator=None) -> torch.Tensor:
    """Two interleaved half circles (as scikit-learn's make_moons), centred and scaled to about unit spread."""
    half = n // 2
    a = math.pi * torch.rand(half, generator=generator, dtype=torch.float64)
    b = math.pi * torch.rand(n - half, generator=generator, dtype=torch.float64)
    upper = torch.stack([torch.cos(a), torch.sin(a)], 1)
    lower = torch.stack([1 - torch.cos(b), 0.5 - torch.sin(b)], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return ((x - torch.tensor([0.5, 0.25], dtype=torch.float64)) / 0.9).float()


def sample_toy(name: str, n: int, generator=None) -> torch.Tensor:
    """n float32 samples of the named toy distribution ("eight_gaussians" or "two_moons")."""
    if name == "eight_gaussians":
        return eight_gaussians().sample(n, generator=generator)[0].float()
    if name == "two_moons":
        return two_moons(n, generator=generator)
    raise ValueError(f"unknown toy distribution {name!r}; known: ['eight_gaussians', 'two_moons']")
