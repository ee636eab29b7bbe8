"""Improved consistency training (Song & Dhariwal 2023, "Improved Techniques for Training Consistency
Models"): pseudo-Huber distance between the network at adjacent noise levels of one noisy sample, the
target from the same network without gradient (no EMA teacher), lognormal level sampling and the N(k)
doubling curriculum; weight 1 / (sigma_{i+1} - sigma_i). f(x, sigma_min) = x holds by construction."""
from __future__ import annotations

import torch

from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data
from lit_diffusion.objectives.consistency_loss import (
    check_weighting,
    consistency_path,
    default_huber_c,
    gap_weight,
    pseudo_huber,
)
from lit_diffusion.objectives.parameterisation import ConsistencyPreconditioning
from lit_diffusion.objectives.time_samplers import ConsistencyCurriculum
from lit_diffusion.objectives.weightings import UniformWeighting


class ConsistencyTraining(DiffusionObjective):
    """Args:
        sigma_min, sigma_max, rho: the EDM noise-level path (Karras et al. 2022).
        sigma_data: data standard deviation for the skip scalings.
        curriculum: discretisation schedule; its total_steps should equal the run's steps.
        huber_c: pseudo-Huber constant; None = 0.00054 sqrt(d).
        weighting: "inverse_gap" (iCT) or "uniform".
    """

    default_sampler = "consistency"
    default_nfe = 1

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 sigma_data: float = 0.5, curriculum: ConsistencyCurriculum | None = None,
                 huber_c: float | None = None, weighting: str = "inverse_gap",
                 label_dropout: float = 0.0, null_label: int | None = None):
        check_weighting(weighting)
        if huber_c is not None and huber_c <= 0:
            raise ValueError(f"ConsistencyTraining: huber_c must be positive, got {huber_c}")
        super().__init__(consistency_path(sigma_min, sigma_max, rho), ConsistencyPreconditioning(sigma_data),
                         None, UniformWeighting(), label_dropout, null_label)
        self.curriculum = curriculum or ConsistencyCurriculum()
        self.huber_c, self.pair_weighting = huber_c, weighting
        self.step = 0

    def set_training_step(self, step: int) -> None:
        self.step = int(step)

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        t_i, t_next = self.curriculum.sample_pairs(x0.shape[0], self.step, self.path, generator, x0.device)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) if noise is None else noise
        cond = self.drop_labels(cond, generator)
        shape = (-1,) + (1,) * (x0.ndim - 1)
        sigma_next = self.path.sigma(t_next.double()).to(x0.dtype).reshape(shape)
        sigma_i = self.path.sigma(t_i.double()).to(x0.dtype).reshape(shape)
        f_next = self.predict(net, x0 + sigma_next * z, t_next, cond).x0
        with torch.no_grad():
            f_i = self.predict(net, x0 + sigma_i * z, t_i, cond).x0
        c = self.huber_c if self.huber_c is not None else default_huber_c(x0)
        loss = pseudo_huber(f_next - f_i, c)
        if self.pair_weighting == "inverse_gap":
            loss = loss * gap_weight(self.path, t_i, t_next).to(loss)
        return LossOutput(loss, t_next)
