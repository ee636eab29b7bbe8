"""Samplers: pure-torch integrators over a time grid, given a predictor (x, t) -> (x0, eps).

`run_sampler(name, path, predict, x_init, nfe, ...)` picks the grid for the requested NFE, runs the
sampler and returns SamplerOutput(x0, nfe) with the evaluations actually made.
"""
from __future__ import annotations

from lit_diffusion.samplers.adaptive import dopri5, sample_adaptive
from lit_diffusion.samplers.base import CountingPredictor, SamplerOutput, velocity
from lit_diffusion.samplers.consistency import sample_consistency
from lit_diffusion.samplers.ddim import ddim_step, sample_ddim
from lit_diffusion.samplers.ddpm import ddpm_step, sample_ddpm
from lit_diffusion.samplers.dpm_solver import sample_dpm_solver_2m
from lit_diffusion.samplers.euler import euler_step, sample_euler
from lit_diffusion.samplers.grids import DEFAULT_SPACING, default_grid, is_spacing, time_grid
from lit_diffusion.samplers.integer_steps import SPACINGS
from lit_diffusion.samplers.heun import heun_step, heun_steps_for_nfe, sample_heun
from lit_diffusion.samplers.mean_flow import sample_mean_flow
from lit_diffusion.samplers.shortcut import sample_shortcut
from lit_diffusion.samplers.thresholding import THRESHOLDS, thresholded

# name -> (function, steps for a requested nfe, default grid on a continuous-time path; a discrete-time path
# samples every fixed-grid sampler on its integer steps, spaced DEFAULT_SPACING, unless a grid is named)
SAMPLERS = {
    "euler": (sample_euler, lambda nfe: nfe, "uniform"),
    "heun": (sample_heun, heun_steps_for_nfe, "edm"),
    "ddim": (sample_ddim, lambda nfe: nfe, "uniform"),
    "ddpm": (sample_ddpm, lambda nfe: nfe, "uniform"),
    "dpm++2m": (sample_dpm_solver_2m, lambda nfe: nfe, "logsnr"),
    "adaptive": (sample_adaptive, lambda nfe: 1, "uniform"),
    "consistency": (sample_consistency, lambda nfe: nfe, "uniform"),
    "mean_flow": (sample_mean_flow, lambda nfe: nfe, "uniform"),
    "shortcut": (sample_shortcut, lambda nfe: nfe, "uniform"),
}

# single ODE steps for distillation: (path, predict, x, t, s) -> x_s, t and s floats or (B,) tensors
ODE_STEPS = {"euler": euler_step, "heun": heun_step}


def run_sampler(name: str, path, predict, x_init, nfe: int | None = None, grid: str | None = None,
                generator=None, t_max: float = 1.0, **options) -> SamplerOutput:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {sorted(SAMPLERS)}")
    fn, steps_for, default_grid = SAMPLERS[name]
    if name != "adaptive":
        if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 1:
            raise ValueError(f"sampler {name!r}: nfe must be an integer >= 1, got {nfe!r}")
    steps = steps_for(nfe if nfe is not None else 1)
    times = time_grid(grid or grid_name(name, path), steps, path, t_max=t_max)
    return fn(path, predict, x_init, times, generator=generator, **options)


def grid_name(sampler: str, path, grid: str | None = None) -> str:
    """The grid `run_sampler` uses (for the protocol card): the named one, else the default for this path."""
    if grid is not None:
        return grid
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {sorted(SAMPLERS)}")
    own = SAMPLERS[sampler][2]
    return own if sampler == "adaptive" else default_grid(path, own)


def grid_description(sampler: str, path, grid: str | None = None) -> str:
    """The grid as the protocol card records it, e.g. "linspace (integer steps of T = 1000)"."""
    name = grid_name(sampler, path, grid)
    if sampler == "adaptive":
        return "adaptive (dopri5)"
    return f"{name} (integer steps of T = {path.num_steps})" if is_spacing(name) else name


__all__ = [
    "SAMPLERS", "ODE_STEPS", "THRESHOLDS", "thresholded", "run_sampler", "time_grid", "grid_name",
    "grid_description", "DEFAULT_SPACING", "SPACINGS", "SamplerOutput", "CountingPredictor", "velocity",
    "sample_euler", "sample_heun", "sample_ddim", "sample_ddpm", "sample_dpm_solver_2m", "sample_adaptive",
    "sample_consistency", "sample_mean_flow", "sample_shortcut", "euler_step", "heun_step", "ddim_step", "ddpm_step", "dopri5",
]
