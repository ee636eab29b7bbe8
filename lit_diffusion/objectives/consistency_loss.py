"""Pieces shared by consistency training and distillation (Song et al. 2023; Song & Dhariwal 2023)."""
from __future__ import annotations

import math

import torch

from lit_diffusion.objectives.paths import EDMSigmaPath


def pseudo_huber(diff: torch.Tensor, c: float) -> torch.Tensor:
    """sqrt(||diff||^2 + c^2) - c per sample (Song & Dhariwal 2023, sec. 3.3). diff (B, ...) -> (B,)."""
    return torch.sqrt(diff.pow(2).flatten(1).sum(1) + c**2) - c


def default_huber_c(x0: torch.Tensor) -> float:
    """c = 0.00054 sqrt(d), d the data dimension (Song & Dhariwal 2023, sec. 3.3)."""
    return 0.00054 * math.sqrt(x0[0].numel())


def consistency_path(sigma_min: float, sigma_max: float, rho: float) -> EDMSigmaPath:
    return EDMSigmaPath(sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)


def gap_weight(path, t_i: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """lambda = 1 / (sigma_{i+1} - sigma_i) in EDM noise level (Song & Dhariwal 2023, sec. 3.3)."""
    t_i, t_next = t_i.double(), t_next.double()
    return (1.0 / (path.noise_ratio(t_next) - path.noise_ratio(t_i))).float()


WEIGHTINGS = ("inverse_gap", "uniform")


def check_weighting(name: str) -> None:
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown consistency weighting {name!r}; known: {list(WEIGHTINGS)}")
