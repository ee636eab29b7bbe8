"""Rectified flow (Liu et al. 2022, "Flow Straight and Fast"): the linear path x_t = (1 - t) x0 + t eps,
trained on independent (noise, data) pairs or on a given coupling, and reflow: pairs produced by
integrating a trained flow, on which the next flow is trained (k-rectified flow)."""
from __future__ import annotations

import torch

from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import LinearPath
from lit_diffusion.objectives.time_samplers import TimeSampler, UniformTime
from lit_diffusion.objectives.weightings import UniformWeighting, Weighting
from lit_diffusion.samplers import velocity


class RectifiedFlow(DiffusionObjective):
    """Args:
        time_sampler / weighting: override uniform t and weight 1.
    Train on a coupling by passing `noise=` (the paired noise) to `loss`.
    """

    default_sampler = "euler"
    default_nfe = 32

    def __init__(self, time_sampler: TimeSampler | None = None, weighting: Weighting | None = None,
                 label_dropout: float = 0.0, null_label: int | None = None):
        super().__init__(LinearPath(), QuantityParameterisation("velocity"), time_sampler or UniformTime(),
                         weighting or UniformWeighting(), label_dropout, null_label)

    @torch.no_grad()
    def reflow_pairs(self, net, noise: torch.Tensor, sampler: str = "euler", nfe: int = 64, cond=None,
                     generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise, x0) pairs: x0 is the trained flow's sample from exactly that noise."""
        return noise, self.sample(net, noise, sampler=sampler, nfe=nfe, cond=cond, generator=generator)


@torch.no_grad()
def straightness(objective: DiffusionObjective, net, noise: torch.Tensor, nfe: int = 64, cond=None) -> float:
    """Liu et al. 2022, eq. 10: S = int_0^1 E || (x_1 - x_0) - dx_t/dt ||^2 dt along the learned ODE,
    measured on an Euler trajectory of `nfe` uniform steps (mean over dimensions). 0 = straight."""
    if nfe < 1:
        raise ValueError(f"straightness: nfe must be >= 1, got {nfe}")
    times = torch.linspace(1.0, 0.0, nfe + 1, dtype=torch.float64).tolist()
    x = objective.prior(noise)
    x_start, velocities = x, []
    predict = objective.predictor(net, cond)
    for t, s in zip(times, times[1:]):
        v = velocity(objective.path, predict(x, t), t)
        velocities.append(v)
        x = x + (s - t) * v
    # x(t) goes from x_start at t = 1 to x at t = 0; a straight path has dx/dt = x_start - x everywhere
    chord = x_start - x
    return float(torch.stack([(chord - v).pow(2).flatten(1).mean(1) for v in velocities]).mean())
