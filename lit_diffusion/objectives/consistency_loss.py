"""What consistency training and distillation share (Song et al. 2023; Song & Dhariwal 2023): the EDM
noise-level path with the boundary-preserving preconditioning, a pair sampler as the objective's time
sampler (adjacent times t_i < t_{i+1}), a pair weighting as its weighting, and a distance between the
network's outputs at the two times: pseudo-Huber (iCT) or squared L2 (Song et al. 2023)."""
from __future__ import annotations

import math

import torch

from lit_diffusion.objectives.base import DiffusionObjective, LossOutput
from lit_diffusion.objectives.parameterisation import ConsistencyPreconditioning
from lit_diffusion.objectives.paths import EDMSigmaPath
from lit_diffusion.objectives.time_samplers import PairSampler
from lit_diffusion.objectives.weightings import PairWeighting


def pseudo_huber(diff: torch.Tensor, c: float) -> torch.Tensor:
    """sqrt(||diff||^2 + c^2) - c per sample (Song & Dhariwal 2023, sec. 3.3). diff (B, ...) -> (B,)."""
    return torch.sqrt(diff.pow(2).flatten(1).sum(1) + c**2) - c


def default_huber_c(x0: torch.Tensor) -> float:
    """c = 0.00054 sqrt(d), d the data dimension (Song & Dhariwal 2023, sec. 3.3)."""
    return 0.00054 * math.sqrt(x0[0].numel())


def squared_l2(diff: torch.Tensor) -> torch.Tensor:
    """||diff||^2 / d per sample (Song et al. 2023, sec. 3, the l2 metric; mean over the d dimensions so that
    the loss scale, and with it gradient clipping, does not grow with the resolution). (B, ...) -> (B,)."""
    return diff.pow(2).flatten(1).mean(1)


DISTANCES = ("pseudo_huber", "squared_l2")


def consistency_path(sigma_min: float, sigma_max: float, rho: float) -> EDMSigmaPath:
    return EDMSigmaPath(sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)


class ConsistencyObjective(DiffusionObjective):
    """The shared frame; subclasses say how the two outputs of a pair are produced."""

    default_sampler = "consistency"
    default_nfe = 1

    def __init__(self, pairs: PairSampler, weighting: PairWeighting, sigma_min: float, sigma_max: float,
                 rho: float, sigma_data: float, huber_c: float | None, label_dropout: float,
                 null_label: int | None, distance: str = "pseudo_huber"):
        if distance not in DISTANCES:
            raise ValueError(f"{type(self).__name__}: distance must be one of {DISTANCES}, got {distance!r}")
        if huber_c is not None and huber_c <= 0:
            raise ValueError(f"{type(self).__name__}: huber_c must be positive, got {huber_c}")
        super().__init__(consistency_path(sigma_min, sigma_max, rho), ConsistencyPreconditioning(sigma_data),
                         pairs, weighting, label_dropout, null_label)
        self.huber_c, self.distance = huber_c, distance
        self.step, self.progress, self._calls = None, None, 0

    def set_training_step(self, step: int, progress: float | None = None) -> None:
        """The training loop's step and share of the run done (images seen / max_images), for curricula.
        A plain loop need not call it: the objective then counts its own gradient-enabled loss calls."""
        self.step = int(step)
        self.progress = None if progress is None else float(progress)

    def current_step(self) -> int:
        return self._calls if self.step is None else self.step

    def sample_pairs(self, x0: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_i, t_next), each (B,), from the pair sampler at the current step / progress of the run."""
        if torch.is_grad_enabled():
            self._calls += 1
        return self.time_sampler.sample_pairs(x0.shape[0], self.current_step(), self.path, generator, x0.device,
                                              progress=self.progress)

    def pair_loss(self, f_next: torch.Tensor, f_i: torch.Tensor, x0: torch.Tensor, t_i: torch.Tensor,
                  t_next: torch.Tensor) -> LossOutput:
        """lambda(t_i, t_next) * d(f_next, f_i), d the objective's distance; reported at t_next."""
        if self.distance == "squared_l2":
            loss = squared_l2(f_next - f_i)
        else:
            loss = pseudo_huber(f_next - f_i, self.huber_c if self.huber_c is not None else default_huber_c(x0))
        return LossOutput(loss * self.weighting(self.path, t_i, t_next).to(loss), t_next)
