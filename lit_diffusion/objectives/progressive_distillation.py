"""Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion
Models", arXiv 2202.00512, Alg. 2): a student learns to take in one DDIM step what its teacher takes in two.

The student samples with N = teacher_steps / 2 deterministic DDIM steps on the uniform grid t_i = i / N of the
cosine VP path (the paper's; t = 0 data, t = 1 noise, as the house). For t = i / N, t' = t - 1/(2N),
t'' = t - 1/N and z_t = alpha_t x + sigma_t eps, the teacher's two DDIM steps
    z_t'  = alpha_t'  x_teacher(z_t)  + (sigma_t'  / sigma_t)  (z_t  - alpha_t  x_teacher(z_t)),
    z_t'' = alpha_t'' x_teacher(z_t') + (sigma_t'' / sigma_t') (z_t' - alpha_t' x_teacher(z_t'))
give the x0 that one student DDIM step from z_t must predict to land on z_t'' (Alg. 2):
    x~ = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t).
The student is v-parameterised (Sec. 4) and regresses x~ with the truncated-SNR weight max(alpha^2 / sigma^2, 1)
(Sec. 4, "truncated SNR"). The teacher is any objective with its network (a lit_diffusion checkpoint through
training/recipes.py), evaluated on the student's path through `translated_predictor`; its DDIM step is the shared
sampler step (samplers/ddim.py). Rounds chain: a student becomes the next round's teacher at half the steps,
started from its weights (1024 -> 512 -> ... -> 1 in the paper).
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data
from lit_diffusion.objectives.consistency_tuning import ConsistencyTuning
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import VPCosinePath
from lit_diffusion.objectives.teacher import translated_predictor
from lit_diffusion.objectives.time_samplers import DiscreteUniformTime
from lit_diffusion.objectives.weightings import UniformWeighting
from lit_diffusion.samplers.ddim import ddim_step


class ProgressiveDistillation(DiffusionObjective):
    """Args:
        teacher: the teacher's objective; teacher_net: its network (kept frozen here).
        teacher_steps: the teacher's DDIM step count, even; the student learns teacher_steps / 2 steps and samples
            with them by default (sampler "ddim", grid "uniform").
    """

    default_sampler = "ddim"
    # the student starts from its teacher's weights (Alg. 2); in a plain loop, with the same named error as ECT's
    load_pretrained = staticmethod(ConsistencyTuning.load_pretrained)

    def __init__(self, teacher: DiffusionObjective, teacher_net: torch.nn.Module, teacher_steps: int,
                 label_dropout: float = 0.0, null_label: int | None = None):
        if not isinstance(teacher, DiffusionObjective):
            raise TypeError(f"ProgressiveDistillation: teacher must be a lit_diffusion objective, got "
                            f"{type(teacher).__name__}")
        if isinstance(teacher_steps, bool) or not isinstance(teacher_steps, int) or teacher_steps < 2 or teacher_steps % 2:
            raise ValueError(f"ProgressiveDistillation: teacher_steps must be an even integer >= 2 (the student "
                             f"learns teacher_steps / 2), got {teacher_steps!r}")
        self.student_steps = teacher_steps // 2
        super().__init__(VPCosinePath(), QuantityParameterisation("v"), DiscreteUniformTime(self.student_steps),
                         UniformWeighting(), label_dropout, null_label)
        self.teacher_steps, self.default_nfe = teacher_steps, self.student_steps
        if isinstance(teacher_net, torch.nn.Module):
            teacher_net = teacher_net.requires_grad_(False).eval()
        self.teacher, self.teacher_net = teacher, teacher_net

    def distillation_target(self, x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        """x~ of Alg. 2 from the teacher's two DDIM steps t -> t' -> t''; t (B,) on the student's grid."""
        half = 0.5 / self.student_steps
        t1, t2 = t - half, (t - 2 * half).clamp_min(0.0)
        with torch.no_grad():
            teacher = translated_predictor(self.teacher, self.teacher_net, self.path, cond)
            z1 = ddim_step(self.path, teacher, x_t, t, t1)
            z2 = ddim_step(self.path, teacher, z1, t1, t2)
            c, c2 = PathCoefficients.at(self.path, t, x_t), PathCoefficients.at(self.path, t2, x_t)
            ratio = c2.sigma / c.sigma
            return (z2 - ratio * x_t) / (c2.alpha - ratio * c.alpha)

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        t = self.time_sampler.sample(x0.shape[0], self.path, generator=generator, device=x0.device).to(x0.dtype)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        c = PathCoefficients.at(self.path, t, x0)
        x_t = c.alpha * x0 + c.sigma * noise
        cond = self.drop_labels(cond, generator)
        target = self.distillation_target(x_t, t, cond)
        x0_student = self.predict(net, x_t, t, cond).x0
        snr = (c.alpha / c.sigma).pow(2).flatten()
        return LossOutput(snr.clamp_min(1.0) * (x0_student - target).pow(2).flatten(1).mean(1), t)
