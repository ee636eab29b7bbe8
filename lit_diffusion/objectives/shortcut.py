"""Shortcut models (Frans et al. 2024, "One Step Diffusion via Shortcut Models", arXiv 2410.12557).

A flow-matching network conditioned on the step size d: s(x_t, t, d) is the direction such that one step of
size d lands where the ODE goes, x_{t-d} = x_t - d s(x_t, t, d) (house time: t = 0 data, t = 1 noise; the
paper's t runs the other way, so its x_{t+d} = x_t + d s becomes a step down in t here). Training (Sec. 3, eq. 5):
- flow matching at d = 0: s(z_t, t, 0) regresses eps - x0 on the linear path z_t = (1 - t) x0 + t eps;
- self-consistency on a fraction of the batch (1/4 in the paper): one step of size 2h equals two of size h,
    s_target = (s(z_t, t, h) + s(z', t - h, h)) / 2,  z' = z_t - h s(z_t, t, h),
  computed with the network under stop-gradient, for 2h in {2/M, 4/M, ..., 1} (M = max_steps = 128 in the paper).
The smallest step 1/M is the flow-matching step itself: the network is queried at d = 0 there (the paper's base
case; the official code gives flow matching and that step the same input). t lies on the grid of the step
being learnt (multiples of 2h for the consistency part, of 1/M for flow matching), where sampling queries it.
The step size is the backbone's second time input (backbones/second_time.py): `net(z, t, cond, r=d)`.
Sampling: N steps of d = 1/N (samplers/shortcut.py), for N a power of two up to M; d = 0 is the instantaneous
velocity, so every ODE sampler also works with a shortcut model.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data, checked_output
from lit_diffusion.objectives.mean_flow import call_with_second_time, require_second_time
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import LinearPath
from lit_diffusion.objectives.time_samplers import UniformTime
from lit_diffusion.objectives.weightings import UniformWeighting


class ShortcutModel(DiffusionObjective):
    """Args:
        max_steps: M, the most sampling steps; the smallest step size is 1/M (a power of two >= 2; 128 in the paper).
        consistency_fraction: share of each batch trained on the self-consistency target (1/4 in the paper).
    """

    default_sampler = "shortcut"
    default_nfe = 1

    def __init__(self, max_steps: int = 128, consistency_fraction: float = 0.25, label_dropout: float = 0.0,
                 null_label: int | None = None):
        if not isinstance(max_steps, int) or max_steps < 2 or max_steps & (max_steps - 1):
            raise ValueError(f"ShortcutModel: max_steps must be a power of two >= 2 (the smallest step is "
                             f"1/max_steps), got {max_steps!r}")
        if not 0.0 <= consistency_fraction < 1.0:
            raise ValueError(f"ShortcutModel: consistency_fraction must lie in [0, 1), got {consistency_fraction}")
        super().__init__(LinearPath(), QuantityParameterisation("velocity"), UniformTime(), UniformWeighting(),
                         label_dropout, null_label)
        self.max_steps, self.consistency_fraction = max_steps, float(consistency_fraction)

    @property
    def step_counts(self) -> list[int]:
        """The step counts N the model is trained for: d = 1/N with N in 1, 2, 4, ..., max_steps."""
        return [2**k for k in range(int(math.log2(self.max_steps)) + 1)]

    # -- the network as a step ------------------------------------------------------------------------
    def step_input(self, d: torch.Tensor) -> torch.Tensor:
        """The network's step-size input for a step of size d: 0 for the smallest step 1/M (flow matching)."""
        return torch.where(d <= 1.0 / self.max_steps + 1e-9, torch.zeros_like(d), d)

    def step_velocity(self, net, z: torch.Tensor, t, d, cond=None) -> torch.Tensor:
        """s(z, t, d): the step from t to t - d is z - d s; t, d floats, 0-dim or (B,) tensors."""
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        d = torch.as_tensor(d, dtype=z.dtype, device=z.device).expand(z.shape[0])
        return checked_output(call_with_second_time(net, z, t, cond, self.step_input(d), "ShortcutModel"), z)

    def predict(self, net, x_t, t, cond=None) -> Prediction:
        """The instantaneous velocity s(z, t, 0), read as (x0, eps)."""
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        c = PathCoefficients.at(self.path, t, x_t)
        return self.parameterisation.to_prediction(self.step_velocity(net, x_t, c.t, 0.0, cond), x_t, c)

    # -- training --------------------------------------------------------------------------------------
    def sample_steps(self, batch: int, generator=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, d), each (B,) float64, for the consistency part: d = 2h in {2/M, ..., 1} uniform over the
        log2(M) levels, t = k d with k uniform in {1, ..., 1/d} (so that t - d >= 0)."""
        levels = int(math.log2(self.max_steps))
        j = torch.randint(1, levels + 1, (batch,), generator=generator, device=device)
        d = j.double().exp2() / self.max_steps
        sections = (1.0 / d).round().long()
        k = (torch.rand(batch, generator=generator, device=device, dtype=torch.float64) * sections).floor() + 1
        return torch.minimum(k, sections.double()) * d, d

    def consistency_target(self, net, z, t, d, cond) -> torch.Tensor:
        """sg((s(z, t, h) + s(z', t - h, h)) / 2) with h = d / 2 and z' = z - h s(z, t, h) (eq. 5)."""
        h = d / 2
        shape = (-1,) + (1,) * (z.ndim - 1)
        with torch.no_grad():
            s1 = self.step_velocity(net, z, t, h, cond)
            s2 = self.step_velocity(net, z - h.reshape(shape) * s1, t - h, h, cond)
        return ((s1 + s2) / 2).detach()

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        require_second_time(net, "ShortcutModel")
        b = x0.shape[0]
        n_sc = int(round(b * self.consistency_fraction))
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        t_sc, d_sc = self.sample_steps(n_sc, generator, x0.device)
        # flow matching on the grid of the smallest step: t = k / M, k in {1, ..., M}
        t_fm = torch.randint(1, self.max_steps + 1, (b - n_sc,), generator=generator, device=x0.device).double()
        t = torch.cat([t_sc, t_fm / self.max_steps]).to(x0.dtype)
        d = torch.cat([d_sc, torch.zeros(b - n_sc, dtype=torch.float64, device=x0.device)]).to(x0.dtype)
        c = PathCoefficients.at(self.path, t, x0)
        z = c.alpha * x0 + c.sigma * noise
        cond = self.drop_labels(cond, generator)
        target = noise - x0  # the conditional velocity d/dt of (1 - t) x0 + t eps
        if n_sc:
            sub = None if cond is None else cond[:n_sc]
            target = torch.cat([self.consistency_target(net, z[:n_sc], t[:n_sc], d[:n_sc], sub), target[n_sc:]])
        s = self.step_velocity(net, z, t, d, cond)
        return LossOutput((s - target).pow(2).flatten(1).mean(1), t)

    # -- sampling --------------------------------------------------------------------------------------
    def check_step_count(self, nfe: int) -> None:
        if nfe not in self.step_counts:
            raise ValueError(f"ShortcutModel: sampling at {nfe} steps needs step size d = 1/{nfe}, which this model "
                             f"was not trained for (max_steps = {self.max_steps}); valid step counts: "
                             f"{', '.join(map(str, self.step_counts))} (--nfe)")

    @torch.no_grad()
    def sample_with_info(self, net, noise, sampler: str | None = None, nfe: int | None = None, cond=None,
                         guidance: float = 1.0, generator=None, grid: str | None = None, guidance_interval=None,
                         **options):
        if (sampler or self.default_sampler) == "shortcut":
            self.check_step_count(self.default_nfe if nfe is None else nfe)
            if grid not in (None, "uniform"):
                raise ValueError(f"the 'shortcut' sampler takes N equal steps d = 1/N (grid 'uniform'), got grid "
                                 f"{grid!r}")
            if guidance != 1.0:
                raise ValueError("the 'shortcut' sampler takes no classifier-free guidance here; use guidance=1")
            if options.get("x0_threshold") is not None:
                raise ValueError("x0_threshold applies to the ODE samplers' predictions, not to the 'shortcut' "
                                 "sampler's steps")
            options["step_velocity"] = lambda z, t, d: self.step_velocity(net, z, t, d, cond)
        return super().sample_with_info(net, noise, sampler=sampler, nfe=nfe, cond=cond, guidance=guidance,
                                        generator=generator, grid=grid, guidance_interval=guidance_interval,
                                        **options)
