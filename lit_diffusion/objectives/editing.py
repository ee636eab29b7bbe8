"""Editing with a trained objective: SDEdit (samplers/sdedit.py) and RePaint inpainting (samplers/repaint.py).

Both need the objective's prediction to give x0 of the data on a Gaussian path x_t = alpha_t x + sigma_t eps:
every objective here does (DDPM, flow matching, rectified flow, consistency models through their consistency
function, MeanFlow through its instantaneous velocity u(z, t, t)), except those that set `edit_refusal` (INDM,
whose state is a flow's latent). `images` are in the model's data range ([-1, 1] for images), `noise` standard
normal of the same shape (generation.noise gives each index its own), `mask` 1 where the model paints.
"""
from __future__ import annotations

import torch

from lit_diffusion.samplers import SamplerOutput, time_grid
from lit_diffusion.samplers import grid_name as default_grid_name
from lit_diffusion.samplers.repaint import check_repaint_step, sample_repaint
from lit_diffusion.samplers.sdedit import check_t0, sdedit_start
from lit_diffusion.samplers.thresholding import thresholded

EDITS = ("sdedit", "inpaint")


def check_editable(objective) -> None:
    if objective.edit_refusal:
        raise ValueError(f"{type(objective).__name__} cannot edit: {objective.edit_refusal}; edit with a checkpoint "
                         "of DDPM, flow matching, rectified flow, MeanFlow or a consistency model")


@torch.no_grad()
def sdedit(objective, net, images: torch.Tensor, noise: torch.Tensor, t0: float, sampler: str | None = None,
           nfe: int | None = None, cond=None, guidance: float = 1.0, generator=None, grid: str | None = None,
           **options) -> SamplerOutput:
    """Noise `images` to t0 and solve back to 0 with `sampler` (any of the objective's) in `nfe` evaluations."""
    check_editable(objective)
    start = sdedit_start(objective.path, images, noise, t0)
    return objective.sample_with_info(net, noise, sampler=sampler, nfe=nfe, cond=cond, guidance=guidance,
                                      generator=generator, grid=grid, start=start, t_max=float(t0), **options)


def inpaint_sampler(objective, sampler: str | None) -> str:
    """The step RePaint takes: the one named, else the objective's default sampler, or DDPM's ancestral step (the
    paper's) where that default has no single step (MeanFlow's average velocity, multistep solvers)."""
    if sampler is not None:
        return sampler
    try:
        check_repaint_step(objective.default_sampler)
        return objective.default_sampler
    except ValueError:
        return "ddpm"


@torch.no_grad()
def inpaint(objective, net, images: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, t0: float = 1.0,
            sampler: str | None = None, nfe: int | None = None, jump: int = 1, resample: int = 1, cond=None,
            guidance: float = 1.0, generator=None, grid: str | None = None, guidance_interval=None,
            x0_threshold: str | None = None, data_range: tuple[float, float] = (-1.0, 1.0),
            **options) -> SamplerOutput:
    """RePaint: paint `images` where `mask` is 1 in `nfe` grid steps from t0 (each step resampled as jump and
    resample say; the NFE reported counts every evaluation), keeping the rest."""
    check_editable(objective)
    step = inpaint_sampler(objective, sampler)
    check_repaint_step(step)
    nfe = objective.default_nfe if nfe is None else nfe
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"inpainting: nfe (grid steps) must be an integer >= 1, got {nfe!r}")
    t0 = check_t0(t0)
    start = sdedit_start(objective.path, images, noise, t0)
    x = objective.prior(noise) if start is None else start
    predict = objective.predictor(net, cond, guidance, guidance_interval)
    if x0_threshold is not None:
        predict = thresholded(predict, objective.path, x0_threshold, data_range)
    times = time_grid(default_grid_name(step, objective.path, grid), nfe, objective.path, t_max=t0)
    return sample_repaint(objective.path, predict, x, times, images, mask, step=step, jump=jump, resample=resample,
                          generator=generator, **options)
