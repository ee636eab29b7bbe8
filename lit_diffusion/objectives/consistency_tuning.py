"""Easy consistency tuning, ECT (Geng et al. 2024, "Consistency Models Made Easy", Sec. 3-4): consistency
training started from a trained diffusion / flow model's weights, with a continuous-time dt schedule.

The consistency function is the pre-trained model's own x0 prediction, f(x_t, t) = D(x_t, t) on its path and
parameterisation (so tuning starts exactly at the trained model). Pairs r < t come from the EDM noise
level sigma = sigma_t / alpha_t: sigma_t ~ logN(P_mean, P_std^2) and (ECT eq. 12 / Sec. 3.2)
    sigma_r = max(0, sigma_t (1 - n(sigma_t) / q^a)),  n(sigma) = 1 + k sigmoid(-b sigma),
with a the stage of the run: at a = 0, sigma_r = 0 and the loss is plain denoising (diffusion pre-training
as the first stage); each later stage shrinks dt = t - r by q. The loss is lambda d(f(x_t, t), sg f(x_r, r))
with the same noise for both, d the pseudo-Huber distance (Song & Dhariwal 2023) and lambda = 1/(sigma_t -
sigma_r); at r = 0 the target is x0 itself (the boundary condition f(x, 0) = x).
The stage a follows the run's progress (S stages over the run) when the training loop passes it,
otherwise one stage every `stage_steps` of the objective's own loss calls (a plain loop).
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.contract import PathCoefficients
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data
from lit_diffusion.objectives.consistency_loss import default_huber_c, pseudo_huber
from lit_diffusion.objectives.flow_matching import FlowMatching
from lit_diffusion.objectives.time_samplers import _randn


class ConsistencyTuning(DiffusionObjective):
    """Args:
        base: the objective the initial weights were trained with (its path and parameterisation are kept);
            default FlowMatching(). Initialise the network from its checkpoint (`--model.init_from CKPT`,
            or `load_pretrained` in a plain loop).
        q, k, b: the dt schedule (q = 2, k = 8, b = 1 in the paper); stages: number of stages over a run
            whose progress is known; stage_steps: steps per stage in a plain loop.
        p_mean, p_std: log-normal noise levels (-1.1, 2.0 as iCT); huber_c: None = 0.00054 sqrt(d).
    """

    default_sampler = "consistency"
    default_nfe = 1

    def __init__(self, base: DiffusionObjective | None = None, q: float = 2.0, k: float = 8.0, b: float = 1.0,
                 stages: int = 8, stage_steps: int = 1000, p_mean: float = -1.1, p_std: float = 2.0,
                 huber_c: float | None = None, label_dropout: float = 0.0, null_label: int | None = None):
        base = base if base is not None else FlowMatching()
        if q <= 1 or k < 0 or stages < 1 or stage_steps < 1 or p_std <= 0:
            raise ValueError(f"ConsistencyTuning: need q > 1, k >= 0, stages >= 1, stage_steps >= 1, p_std > 0; "
                             f"got q={q}, k={k}, stages={stages}, stage_steps={stage_steps}, p_std={p_std}")
        super().__init__(base.path, base.parameterisation, base.time_sampler, base.weighting, label_dropout, null_label)
        self.base = base
        self.q, self.k, self.b, self.stages, self.stage_steps = float(q), float(k), float(b), int(stages), int(stage_steps)
        self.p_mean, self.p_std, self.huber_c = float(p_mean), float(p_std), huber_c
        self.step, self.progress, self._calls = None, None, 0

    def set_training_step(self, step: int, progress: float | None = None) -> None:
        self.step, self.progress = int(step), None if progress is None else float(progress)

    def stage(self) -> int:
        if self.progress is not None:
            return min(math.floor(max(0.0, self.progress) * self.stages), self.stages - 1)
        return (self._calls if self.step is None else self.step) // self.stage_steps

    def sample_pairs(self, batch: int, generator=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, t) in the path's time, (B,) float64, 0 <= r < t: ECT's dt schedule in EDM noise levels."""
        sigma_t = torch.exp(self.p_mean + self.p_std * _randn(batch, generator, device))
        n = 1 + self.k * torch.sigmoid(-self.b * sigma_t)
        sigma_r = (sigma_t * (1 - n / self.q ** self.stage())).clamp_min(0.0)
        t = self.path.t_from_noise_ratio(sigma_t).clamp(min=max(self.path.t_min, 1e-5))
        r_floor = float(self.path.noise_ratio(torch.zeros(1, dtype=torch.float64)))
        r = torch.where(sigma_r <= r_floor, torch.zeros_like(t), self.path.t_from_noise_ratio(sigma_r))
        return torch.minimum(r, t), t

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        if torch.is_grad_enabled():
            self._calls += 1
        r, t = self.sample_pairs(x0.shape[0], generator, x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        cond = self.drop_labels(cond, generator)
        ct, cr = (PathCoefficients.at(self.path, s.to(x0.dtype), x0) for s in (t, r))
        f_t = self.predict(net, ct.alpha * x0 + ct.sigma * noise, ct.t, cond).x0
        at_zero = (r == 0).reshape(ct.alpha.shape)
        with torch.no_grad():
            r_eval = torch.where(r == 0, t, r).to(x0.dtype)  # no network call is needed at r = 0
            cr_eval = PathCoefficients.at(self.path, r_eval, x0)
            f_r = self.predict(net, cr_eval.alpha * x0 + cr_eval.sigma * noise, r_eval, cond).x0
            f_r = torch.where(at_zero, x0, f_r)
        c = self.huber_c if self.huber_c is not None else default_huber_c(x0)
        gap = (self.path.noise_ratio(t) - torch.where(r == 0, torch.zeros_like(r), self.path.noise_ratio(r)))
        return LossOutput(pseudo_huber(f_t - f_r, c) / gap.clamp_min(1e-8).to(x0.dtype), t.to(x0.dtype))

    @staticmethod
    def load_pretrained(net: torch.nn.Module, state_dict: dict) -> None:
        """Load a trained model's weights into `net`, with an error that names what does not fit."""
        own = net.state_dict()
        missing = sorted(set(own) - set(state_dict))
        bad = [f"{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}"
               for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        unexpected = sorted(set(state_dict) - set(own))
        if bad or missing or unexpected:
            raise ValueError(f"ConsistencyTuning: the pre-trained checkpoint does not fit {type(net).__name__}: "
                             f"wrong shapes {bad[:5]}, missing {missing[:5]}, unexpected {unexpected[:5]}")
        net.load_state_dict(state_dict)
