"""Consistency distillation (Song et al. 2023, Alg. 2): the student at t_{n+1} matches itself (without
gradient) at the point the teacher's ODE step reaches at t_n. The teacher is any objective of this
package with its trained network; its step is a shared sampler step (`samplers.ODE_STEPS`) run on the
student's path through `translated_predictor`, so teacher and student may use different paths."""
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
from lit_diffusion.objectives.teacher import translated_predictor
from lit_diffusion.objectives.time_samplers import UniformGridPairs
from lit_diffusion.objectives.weightings import UniformWeighting
from lit_diffusion.samplers import ODE_STEPS


class ConsistencyDistillation(DiffusionObjective):
    """Args:
        teacher: the trained teacher's objective; teacher_net: its network (kept frozen here).
        teacher_sampler: "heun" (Song et al. 2023) or "euler".
        num_scales: N of the uniform t grid (rho-spaced sigmas on the EDM path); 18 for CIFAR-10.
        sigma_min, sigma_max, rho, sigma_data, huber_c: as in ConsistencyTraining.
        weighting: "uniform" (Song et al. 2023) or "inverse_gap".
    """

    default_sampler = "consistency"
    default_nfe = 1

    def __init__(self, teacher: DiffusionObjective, teacher_net: torch.nn.Module, teacher_sampler: str = "heun",
                 num_scales: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 sigma_data: float = 0.5, huber_c: float | None = None, weighting: str = "uniform",
                 label_dropout: float = 0.0, null_label: int | None = None):
        if teacher_sampler not in ODE_STEPS:
            raise ValueError(f"ConsistencyDistillation: teacher_sampler must be one of {sorted(ODE_STEPS)}, got {teacher_sampler!r}")
        if not isinstance(teacher, DiffusionObjective):
            raise TypeError(f"ConsistencyDistillation: teacher must be a lit_diffusion objective, got {type(teacher).__name__}")
        check_weighting(weighting)
        super().__init__(consistency_path(sigma_min, sigma_max, rho), ConsistencyPreconditioning(sigma_data),
                         None, UniformWeighting(), label_dropout, null_label)
        self.teacher, self.teacher_net = teacher, teacher_net.requires_grad_(False).eval()
        self.teacher_step = ODE_STEPS[teacher_sampler]
        self.pairs = UniformGridPairs(num_scales)
        self.huber_c, self.pair_weighting = huber_c, weighting

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        t_n, t_next = self.pairs.sample_pairs(x0.shape[0], 0, self.path, generator, x0.device)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) if noise is None else noise
        shape = (-1,) + (1,) * (x0.ndim - 1)
        x_next = x0 + self.path.sigma(t_next.double()).to(x0.dtype).reshape(shape) * z
        cond = self.drop_labels(cond, generator)
        with torch.no_grad():
            teacher = translated_predictor(self.teacher, self.teacher_net, self.path, cond)
            x_n = self.teacher_step(self.path, teacher, x_next, t_next, t_n)
            f_n = self.predict(net, x_n, t_n, cond).x0
        f_next = self.predict(net, x_next, t_next, cond).x0
        c = self.huber_c if self.huber_c is not None else default_huber_c(x0)
        loss = pseudo_huber(f_next - f_n, c)
        if self.pair_weighting == "inverse_gap":
            loss = loss * gap_weight(self.path, t_n, t_next).to(loss)
        return LossOutput(loss, t_next)
