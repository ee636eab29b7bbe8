"""RePaint inpainting (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models",
Alg. 1 and the resampling schedule of its sec. 4.2), on any Gaussian path and time grid.

Each step from t to s takes the pixels to keep from the input, noised by the forward kernel to s,
    x_s^known = alpha_s x + sigma_s eps       (eq. 8; fresh eps each step; at s = 0 the input itself),
and the pixels to paint from one step of a sampler, x_s^unknown (eq. 9), and joins them: x_s = m x_s^unknown +
(1 - m) x_s^known, with m = 1 where the model paints (the mask) and 0 where the input is kept. Because the
kept pixels are noised independently of what the model made, the two halves disagree; RePaint harmonises them
by resampling: after reaching certain levels it goes back up `jump` grid steps with the forward transition
    x_u = (alpha_u / alpha_t) x_t + sqrt(sigma_u^2 - (alpha_u / alpha_t)^2 sigma_t^2) z      (u > t)
and descends again, `resample` times in all (the paper's jump length j = 10 and r = 10 resamplings on 250
steps). Levels are counted from the data end of the grid (k = 1 is its last noisy point); the jumps start at
k = 1, 1 + j, 1 + 2j, ... while k + j stays on the grid, as the paper's schedule does (jump = 1: Alg. 1, which
resamples at every level). resample = 1 is plain sampling with the kept pixels pasted in.

The step is any single-step sampler: 'ddpm' (ancestral, the paper's), 'ddim' (eta option), 'euler', 'heun'
(Euler on the last step, as sample_heun) or 'consistency' (jump to x0, re-noise to s; Song et al. 2023 Alg. 4
inpaints the same way). With a mask that paints everything and resample = 1 the loop is exactly the sampler's.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, check_grid
from lit_diffusion.samplers.ddim import ddim_step
from lit_diffusion.samplers.ddpm import ddpm_step
from lit_diffusion.samplers.euler import euler_step
from lit_diffusion.samplers.heun import heun_step
from lit_diffusion.samplers.sdedit import noised


def _consistency_step(path, predict, x, t: float, s: float, generator=None) -> torch.Tensor:
    """The consistency function's x0, re-noised to s as sample_consistency does (x0 itself at s = 0)."""
    x0 = predict(x, t).x0
    if s == 0.0:
        return x0
    c, c0 = PathCoefficients.at_time(path, s), PathCoefficients.at_time(path, 0.0)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return c.alpha * x0 + math.sqrt(max(c.sigma**2 - (c.alpha * c0.sigma / c0.alpha) ** 2, 0.0)) * z


# name -> step(path, predict, x, t, s, generator, **options) -> x_s
REPAINT_STEPS = {
    "ddpm": lambda path, predict, x, t, s, generator=None: ddpm_step(path, predict, x, t, s, generator=generator),
    "ddim": lambda path, predict, x, t, s, generator=None, eta=0.0: ddim_step(path, predict, x, t, s, eta=eta,
                                                                            generator=generator),
    "euler": lambda path, predict, x, t, s, generator=None: euler_step(path, predict, x, t, s),
    "heun": lambda path, predict, x, t, s, generator=None: (euler_step if s == 0.0 else heun_step)(path, predict,
                                                                                                     x, t, s),
    "consistency": _consistency_step,
}


def check_repaint_step(step: str) -> None:
    if step not in REPAINT_STEPS:
        raise ValueError(f"inpainting (RePaint) steps one grid interval at a time; sampler {step!r} has no single "
                         f"step (multistep or adaptive): use one of {sorted(REPAINT_STEPS)}")


def repaint_schedule(steps: int, jump: int = 1, resample: int = 1) -> list[int]:
    """The grid positions visited, from 0 (t0) to `steps` (t = 0): +1 is a denoising step, -jump a jump back."""
    for name, value in (("steps", steps), ("jump", jump), ("resample", resample)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"RePaint: {name} must be an integer >= 1, got {value!r}")
    left = {k: resample - 1 for k in range(1, steps - jump + 1, jump)}  # level k = steps - position
    visits, i = [0], 0
    while i < steps:
        i += 1
        visits.append(i)
        if left.get(steps - i, 0) > 0:
            left[steps - i] -= 1
            i -= jump
            visits.append(i)
    return visits


def renoise(path, x: torch.Tensor, t: float, u: float, generator=None) -> torch.Tensor:
    """A draw of the forward transition q(x_u | x_t), u > t."""
    ct, cu = PathCoefficients.at_time(path, t), PathCoefficients.at_time(path, u)
    a_ut = cu.alpha / ct.alpha
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return a_ut * x + math.sqrt(max(cu.sigma**2 - a_ut**2 * ct.sigma**2, 0.0)) * z


def check_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The mask as a bool tensor broadcasting against the images: True where the model paints."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"the mask must be a tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("the mask must be binary: 1 where the model paints, 0 where the input is kept")
        mask = mask != 0
    try:
        torch.broadcast_shapes(mask.shape, images.shape)
    except RuntimeError:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not broadcast against the images "
                         f"{tuple(images.shape)}") from None
    if torch.broadcast_shapes(mask.shape, images.shape) != images.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} is larger than the images {tuple(images.shape)}")
    return mask.to(images.device)


def sample_repaint(path, predict, x: torch.Tensor, grid: torch.Tensor, images: torch.Tensor, mask: torch.Tensor,
                   step: str = "ddpm", jump: int = 1, resample: int = 1, generator=None, **options) -> SamplerOutput:
    """Inpaint `images` where `mask` is True (1), starting from x at grid[0]; nfe counts every evaluation,
    resampled steps included."""
    check_repaint_step(step)
    paint = check_mask(mask, images)
    keeps_some = not bool(paint.all())
    step_fn = REPAINT_STEPS[step]
    counter = CountingPredictor(predict)
    times = check_grid(grid)
    i = 0
    for j in repaint_schedule(len(times) - 1, jump, resample)[1:]:
        if j < i:
            x = renoise(path, x, times[i], times[j], generator)
        else:
            t, s = times[i], times[j]
            x = step_fn(path, counter, x, t, s, generator=generator, **options)
            if keeps_some:
                known = images if s == 0.0 else noised(
                    path, images, torch.randn(images.shape, generator=generator, device=images.device,
                                              dtype=images.dtype), s)
                x = torch.where(paint, x, known.to(x.dtype))
        i = j
    return SamplerOutput(x, counter.calls)
