"""Per-sample loss weightings, expressed in the space of the network's regression target.

Weightings from the literature are defined in x0 space; `Parameterisation.error_scale` k converts
them: an x0-space weight lambda becomes lambda / k^2 on the squared error of the raw target.
Consistency objectives weigh pairs of adjacent times instead (`PairWeighting`, `make_pair_weighting`).
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.objectives.registry import build


def _flat(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0])


class Weighting:
    """`weight(c, parameterisation) -> (B,)` multiplies the per-sample mean squared error."""

    def __call__(self, c: PathCoefficients, parameterisation) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


class UniformWeighting(Weighting):
    """Weight 1 on the parameterisation's own target (e.g. the 'simple' loss of Ho et al. 2020)."""

    def __call__(self, c, parameterisation):
        return torch.ones_like(c.t)


class MinSNRWeighting(Weighting):
    """Min-SNR-gamma (Hang et al. 2023, eq. 8): x0-space weight min(SNR_t, gamma), SNR = alpha^2 / sigma^2.
    For eps prediction this is min(SNR, gamma) / SNR, for v prediction min(SNR, gamma) / (SNR + 1)."""

    def __init__(self, gamma: float = 5.0):
        if gamma <= 0:
            raise ValueError(f"MinSNRWeighting: gamma must be positive, got {gamma}")
        self.gamma = float(gamma)

    def __call__(self, c, parameterisation):
        snr = (c.alpha / c.sigma) ** 2
        return _flat(snr.clamp(max=self.gamma) / parameterisation.error_scale(c) ** 2)


class EDMWeighting(Weighting):
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 in x0 space (Karras et al. 2022,
    Table 1), sigma the EDM noise level; with EDM preconditioning this is exactly 1 on F."""

    def __init__(self, sigma_data: float = 0.5):
        if sigma_data <= 0:
            raise ValueError(f"EDMWeighting: sigma_data must be positive, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    def __call__(self, c, parameterisation):
        sigma = c.sigma / c.alpha
        lam = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        return _flat(lam / parameterisation.error_scale(c) ** 2)


WEIGHTINGS = {"uniform": UniformWeighting, "min_snr": MinSNRWeighting, "edm": EDMWeighting}


def make_weighting(name: str, **kwargs) -> Weighting:
    return build("weighting", WEIGHTINGS, name, **kwargs)


class PairWeighting:
    """`weight(path, t_i, t_next) -> (B,)` multiplies a consistency model's per-sample distance between
    its outputs at the adjacent times t_i < t_next of one noisy sample."""

    def __call__(self, path, t_i: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UniformPairWeighting(PairWeighting):
    """lambda = 1 for every pair (consistency distillation, Song et al. 2023, Alg. 2)."""

    def __call__(self, path, t_i, t_next):
        return torch.ones(t_next.shape, dtype=torch.float32, device=t_next.device)


class InverseGapWeighting(PairWeighting):
    """lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i) in EDM noise level sigma_t / alpha_t (Song & Dhariwal
    2023, "Improved Techniques for Training Consistency Models", sec. 3.3); evaluated in float64."""

    def __call__(self, path, t_i, t_next):
        t_i, t_next = t_i.double(), t_next.double()
        return (1.0 / (path.noise_ratio(t_next) - path.noise_ratio(t_i))).float()


PAIR_WEIGHTINGS = {"inverse_gap": InverseGapWeighting, "uniform": UniformPairWeighting}


def make_pair_weighting(weighting: str | PairWeighting) -> PairWeighting:
    """A pair weighting from its registered name, or the given PairWeighting object unchanged."""
    if isinstance(weighting, PairWeighting):
        return weighting
    return build("consistency weighting", PAIR_WEIGHTINGS, weighting)
