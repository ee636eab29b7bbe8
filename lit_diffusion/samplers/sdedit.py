"""SDEdit (Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations",
Alg. 1): noise a guide image x to an intermediate time t0 along the path's forward kernel,
    x_{t0} = alpha_{t0} x + sigma_{t0} eps,
then solve back from t0 to 0 with any sampler on a grid restricted to [0, t0]. Small t0 keeps the guide
(faithfulness), t0 near 1 forgets it (realism); at t0 = 1 the start is plain sampling's prior, sigma_1 eps
(the data mean is taken as 0 there, as `DiffusionObjective.prior` does), so SDEdit at t0 = 1 is plain sampling.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients


def check_t0(t0: float) -> float:
    """t0 must lie in (0, 1]: 0 would return the input unchanged, and above 1 there is no path."""
    if isinstance(t0, bool) or not isinstance(t0, (int, float)) or not 0.0 < float(t0) <= 1.0:
        raise ValueError(f"--t0 must lie in (0, 1] (1: start from pure noise, near 0: keep the input), got {t0!r}")
    return float(t0)


def check_edit_input(images: torch.Tensor, noise: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"the input images must be a floating-point tensor, got {getattr(images, 'dtype', type(images))}")
    if images.shape != noise.shape:
        raise ValueError(f"the input images have shape {tuple(images.shape)}, the noise {tuple(noise.shape)}: "
                         "give one image per sample, of the model's sample shape")


def noised(path, images: torch.Tensor, noise: torch.Tensor, t: float) -> torch.Tensor:
    """The forward kernel's draw x_t = alpha_t x + sigma_t eps at one time t shared by the batch."""
    c = PathCoefficients.at_time(path, t)
    return c.alpha * images + c.sigma * noise.to(images.dtype)


def sdedit_start(path, images: torch.Tensor, noise: torch.Tensor, t0: float) -> torch.Tensor | None:
    """Where SDEdit starts: the noised guide at t0 < 1; None at t0 = 1, meaning plain sampling's prior."""
    t0 = check_t0(t0)
    check_edit_input(images, noise)
    return None if t0 == 1.0 else noised(path, images, noise, t0)
