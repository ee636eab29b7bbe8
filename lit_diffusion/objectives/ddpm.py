"""DDPM (Ho et al. 2020) on a variance-preserving path, discrete (T steps) or continuous time."""
from __future__ import annotations

from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import DiscreteVPPath, VPCosinePath, VPLinearPath
from lit_diffusion.objectives.time_samplers import DiscreteUniformTime, TimeSampler, UniformTime
from lit_diffusion.objectives.weightings import UniformWeighting, Weighting


class DDPM(DiffusionObjective):
    """Args:
        prediction: network target, "eps" (Ho et al.), "x0" or "v" (Salimans & Ho 2022).
        schedule: beta schedule, "linear" or "cosine" (Nichol & Dhariwal 2021).
        discrete: T-step discrete time (t = n / T) or the continuous VP SDE (Song et al. 2021).
        num_steps: T for discrete time.
        time_sampler / weighting: override the defaults (discrete or continuous uniform t; weight 1).
    """

    default_sampler = "ddim"
    default_nfe = 50

    def __init__(self, prediction: str = "eps", schedule: str = "linear", discrete: bool = True,
                 num_steps: int = 1000, time_sampler: TimeSampler | None = None,
                 weighting: Weighting | None = None, label_dropout: float = 0.0, null_label: int | None = None):
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"DDPM: prediction must be 'eps', 'x0' or 'v', got {prediction!r}")
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"DDPM: schedule must be 'linear' or 'cosine', got {schedule!r}")
        if discrete:
            path = DiscreteVPPath(num_steps, schedule)
            time_sampler = time_sampler or DiscreteUniformTime(num_steps)
        else:
            path = VPLinearPath() if schedule == "linear" else VPCosinePath()
            time_sampler = time_sampler or UniformTime()
        super().__init__(path, QuantityParameterisation(prediction), time_sampler,
                         weighting or UniformWeighting(), label_dropout, null_label)
