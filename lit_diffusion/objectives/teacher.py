"""Use a trained objective as a predictor on another Gaussian path.

Two Gaussian paths with the same noise-to-signal ratio sigma/alpha describe the same noisy sample up
to scale: x_student / alpha_student = x_teacher / alpha_teacher (Karras et al. 2022, sec. 4). So the
teacher is evaluated at its own time with the matching ratio, and x0 carries over unchanged.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import Prediction
from lit_diffusion.samplers.base import per_sample


def translated_predictor(teacher, teacher_net, student_path, cond=None):
    """A predictor (x, t) -> Prediction on `student_path`, computed by `teacher` (an objective) and its net."""

    def predict(x: torch.Tensor, t) -> Prediction:
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t.double()
        ratio = student_path.noise_ratio(t)
        tau = teacher.path.t_from_noise_ratio(ratio).clamp(min=teacher.path.t_min)
        scale = per_sample(teacher.path.alpha(tau) / student_path.alpha(t), x)
        x0 = teacher.predict(teacher_net, x * scale, tau.to(x.dtype), cond).x0
        alpha_s, sigma_s = (per_sample(f(t), x) for f in (student_path.alpha, student_path.sigma))
        return Prediction(x0, (x - alpha_s * x0) / sigma_s)

    return predict
