"""Shortcut-model sampling (Frans et al. 2024, "One Step Diffusion via Shortcut Models", Alg. 2): with a network
s(x, t, d) conditioned on the step size, each step of the grid jumps from t to s = t - d in one evaluation,
    x_s = x_t - d s(x_t, t, d),
so N equal steps use d = 1/N (the step sizes the model was trained for; the objective checks N).
"""
from __future__ import annotations

import torch

from lit_diffusion.samplers.base import SamplerOutput, check_grid


def sample_shortcut(path, predict, x: torch.Tensor, grid: torch.Tensor, generator=None,
                    step_velocity=None) -> SamplerOutput:
    """`step_velocity(x, t, d) -> s` with t, d Python floats; nfe = len(grid) - 1. `predict` (the instantaneous
    predictor) is not used: the objective passes its step-conditioned network."""
    if step_velocity is None:
        raise ValueError("sampler 'shortcut' needs a step-size-conditioned network s(x, t, d) (step_velocity=...); "
                         "use it through the ShortcutModel objective (experiments/objectives/shortcut.yaml)")
    times = check_grid(grid)
    for t, s in zip(times, times[1:]):
        x = x - (t - s) * step_velocity(x, t, t - s)
    return SamplerOutput(x, len(times) - 1)
