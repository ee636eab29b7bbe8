"""Continuous-time consistency training and distillation, sCM (Lu & Song 2024, "Simplifying, Stabilizing and
Scaling Continuous-Time Consistency Models"), on the TrigFlow path (objectives/trigflow.py).

With f(x_t, theta) = cos(theta) x_t - sin(theta) sigma_d F(x_t / sigma_d, theta), the continuous consistency
condition df/dtheta = 0 along the PF-ODE gives the training direction (eq. 8, Alg. 1)
    g = -cos^2(theta) (sigma_d F- - dx_t/dtheta) - w_r cos(theta) sin(theta) (x_t + sigma_d dF-/dtheta),
with F- = sg(F) and dF-/dtheta one JVP of the network with tangent (dx_t/dtheta / sigma_d, dt/dtheta).
dx_t/dtheta is cos(theta) z - sin(theta) x0 for training (CT) or the teacher's PF-ODE velocity (sCD).
Stabilisers (Sec. 4): tangent warm-up w_r = min(1, step / warmup_steps); tangent normalisation
g <- g / (||g|| + c), c = 0.1 (||.|| the per-sample RMS); adaptive weighting (eq. 9)
    L = e^{-w_phi(t)} / D ||F - F- - g||^2 + w_phi(t)
whose learned w_phi(t) (a zero-initialised linear map of Fourier features of t) tracks log E[loss | t].
Written here as e^{-w} L + w (w = log of the loss scale); the paper writes the same with w -> -w.
Time proposal: sigma_d tan(theta) = e^tau, tau ~ N(P_mean, P_std^2) (Sec. 4.1; -1.0, 1.4 for CIFAR-10).

Weighting, by design the paper's: the learned adaptive weight e^{-w_phi(t)} (eq. 9, `adaptive=True`) over the
squared error averaged over the D dimensions (the 1/D of eq. 9), and the tangent normalised per sample by its RMS
(`tangent_c`). NVlabs/FastGen's sCM also offers a fixed 1/sigma_t loss weighting and a per-dimension
normalisation of the loss; neither is built here: the learned w_phi(t) fits log E[loss | t], so at its optimum any
fixed reweighting c(t) cancels out, and the 1/D mean already makes the loss per dimension. A fixed weighting instead of the
learned one is adaptive=False (weight 1 over t).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lit_diffusion.contract import check_jvp_method, network_jvp
from lit_diffusion.contract import PathCoefficients
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data, checked_output
from lit_diffusion.objectives.teacher import translated_predictor
from lit_diffusion.objectives.time_samplers import LogNormalSigma, TimeSampler
from lit_diffusion.objectives.trigflow import HALF_PI, TrigFlowParameterisation, TrigFlowPath
from lit_diffusion.objectives.weightings import UniformWeighting
from lit_diffusion.samplers.base import velocity


class AdaptiveWeight(nn.Module):
    """w_phi(t): Fourier features of t -> Linear -> scalar, zero-initialised (weight 1 at the start)."""

    def __init__(self, features: int = 64):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, features + 1, dtype=torch.float32))
        self.linear = nn.Linear(2 * features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B,)
        args = t.float()[:, None] * self.freqs.to(t.device)[None]
        return self.linear(torch.cat([args.sin(), args.cos()], dim=1))[:, 0]


class ContinuousConsistency(DiffusionObjective):
    """Args:
        sigma_data: data standard deviation (TrigFlow's sigma_d).
        p_mean, p_std: the log-normal time proposal (Sec. 4.1).
        warmup_steps: tangent warm-up length H in optimiser steps (10k in the paper, of 100k+); the step is the one
            set by `set_training_step` or, in a plain loop, the count of gradient-enabled loss calls. None (the
            default): the first `warmup_share` of the run, where the training loop passes its progress (the
            Lightning module and training.plain_loop both do), else 10k steps. A fixed 10k never finished
            in short runs: on the 2-D robustness suite (docs/few-step.md, ring_and_center, 1,500 steps) the
            1-step SW1 was 0.223 (4.3x flow matching's best) with 10k steps and 0.082 (1.6x) with a fifth of the run.
        warmup_share: share of the run the tangent warm-up spans when warmup_steps is None.
        tangent_c: tangent normalisation constant c (None: off).
        adaptive: learn w_phi(t); its parameters are `objective.parameters()` (give them to the optimiser).
        jvp: "forward" or "finite_difference" (contract.network_jvp).
        teacher, teacher_net: distil (sCD) from a trained objective's PF-ODE instead of training (sCT).
        time_sampler: replaces the log-normal proposal (e.g. UniformTime(), which also covers t near 1, where
            1-step sampling starts; backbones that embed 1000 t extrapolate poorly beyond the trained times).
    """

    default_sampler = "consistency"
    default_nfe = 1

    def __init__(self, sigma_data: float = 0.5, p_mean: float = -1.0, p_std: float = 1.4,
                 warmup_steps: int | None = None, tangent_c: float | None = 0.1, adaptive: bool = True,
                 jvp: str = "forward", teacher: DiffusionObjective | None = None, teacher_net=None,
                 time_sampler: TimeSampler | None = None, label_dropout: float = 0.0, null_label: int | None = None,
                 warmup_share: float = 0.2):
        if warmup_steps is not None and warmup_steps < 0:
            raise ValueError(f"ContinuousConsistency: warmup_steps must be >= 0 or None, got {warmup_steps}")
        if not 0.0 <= warmup_share <= 1.0:
            raise ValueError(f"ContinuousConsistency: warmup_share must lie in [0, 1], got {warmup_share}")
        if tangent_c is not None and tangent_c <= 0:
            raise ValueError(f"ContinuousConsistency: tangent_c must be positive or None, got {tangent_c}")
        if (teacher is None) != (teacher_net is None):
            raise ValueError("ContinuousConsistency: give both teacher and teacher_net, or neither")
        super().__init__(TrigFlowPath(sigma_data), TrigFlowParameterisation(sigma_data),
                         time_sampler or LogNormalSigma(p_mean, p_std), UniformWeighting(), label_dropout, null_label)
        self.sigma_data, self.tangent_c = float(sigma_data), tangent_c
        self.warmup_steps, self.warmup_share = None if warmup_steps is None else int(warmup_steps), float(warmup_share)
        self.jvp = check_jvp_method(jvp)
        self.adaptive_weight = AdaptiveWeight() if adaptive else None
        if isinstance(teacher_net, nn.Module):
            teacher_net = teacher_net.requires_grad_(False).eval()
        self.teacher, self.teacher_net = teacher, teacher_net
        self.step, self.progress, self._calls = None, None, 0

    def parameters(self):
        """The adaptive weighting's parameters (empty without it): train them with the network's."""
        return iter(()) if self.adaptive_weight is None else self.adaptive_weight.parameters()

    def set_training_step(self, step: int, progress: float | None = None) -> None:
        self.step, self.progress = int(step), None if progress is None else float(progress)

    def tangent_warmup(self) -> float:
        if self.warmup_steps is None and self.progress is not None:  # a share of the run
            return 1.0 if self.warmup_share == 0 else min(1.0, self.progress / self.warmup_share)
        steps = 10_000 if self.warmup_steps is None else self.warmup_steps
        step = self._calls if self.step is None else self.step
        return 1.0 if steps == 0 else min(1.0, step / steps)

    def dx_dtheta(self, x0, noise, x_t, t, cond) -> torch.Tensor:
        c = PathCoefficients.at(self.path, t, x0)
        if self.teacher is None:  # d/dtheta (cos x0 + sin sigma_d z)
            return HALF_PI ** -1 * (c.d_alpha * x0 + c.d_sigma * noise)
        with torch.no_grad():
            pred = translated_predictor(self.teacher, self.teacher_net, self.path, cond)(x_t, t)
            return (velocity(self.path, pred, t) / HALF_PI).to(x_t.dtype)

    def tangent(self, net, x_t, t, dxdth, cond) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(F with its graph, g, raw): the network output, the normalised training direction of eq. 8, and the
        per-sample mean square of g before normalisation (0 where f is constant along the ODE: the progress)."""
        c = PathCoefficients.at(self.path, t, x_t)
        cos, sin = c.alpha, c.sigma / self.sigma_data
        F, dF = network_jvp(net, x_t / self.sigma_data, c.t, dxdth / self.sigma_data,
                            torch.full_like(c.t, 1.0 / HALF_PI), cond, method=self.jvp)  # dF/dtheta
        F = checked_output(F, x_t)
        F_minus, dF = F.detach(), dF.detach().to(x_t.dtype)
        g = -cos**2 * (self.sigma_data * F_minus - dxdth) - self.tangent_warmup() * cos * sin * (
            x_t + self.sigma_data * dF)
        raw = g.pow(2).flatten(1).mean(1)
        if self.tangent_c is not None:
            g = g / (raw.sqrt().reshape(cos.shape) + self.tangent_c)
        return F, g, raw

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        if torch.is_grad_enabled():
            self._calls += 1
        t = self.time_sampler.sample(x0.shape[0], self.path, generator=generator, device=x0.device).to(x0.dtype)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        c = PathCoefficients.at(self.path, t, x0)
        x_t = c.alpha * x0 + c.sigma * noise
        cond = self.drop_labels(cond, generator)
        F, g, raw = self.tangent(net, x_t, t, self.dx_dtheta(x0, noise, x_t, t, cond), cond)
        mse = (F - F.detach() - g).pow(2).flatten(1).mean(1)
        if self.adaptive_weight is None:
            return LossOutput(mse, t)
        w = self.adaptive_weight.to(x0.device)(t).to(mse.dtype)
        return LossOutput(torch.exp(-w) * mse + w, t, {"raw_error": raw})
