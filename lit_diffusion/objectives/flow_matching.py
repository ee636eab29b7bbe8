"""Conditional flow matching with the OT path (Lipman et al. 2023): regress the conditional velocity
u_t = dx_t/dt = -x0 + (1 - sigma_min) eps (our time runs from data to noise)."""
from __future__ import annotations

from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import OTFlowPath
from lit_diffusion.objectives.time_samplers import TimeSampler, UniformTime
from lit_diffusion.objectives.weightings import UniformWeighting, Weighting


class FlowMatching(DiffusionObjective):
    """Args:
        sigma_min: noise level left at t = 0, in (0, 1).
        time_sampler / weighting: override uniform t and weight 1 (e.g. LogitNormalTime).
    """

    default_sampler = "euler"
    default_nfe = 32

    def __init__(self, sigma_min: float = 1e-4, time_sampler: TimeSampler | None = None,
                 weighting: Weighting | None = None, label_dropout: float = 0.0, null_label: int | None = None):
        super().__init__(OTFlowPath(sigma_min), QuantityParameterisation("velocity"),
                         time_sampler or UniformTime(), weighting or UniformWeighting(), label_dropout, null_label)
