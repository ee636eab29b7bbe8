"""MeanFlow (Geng et al. 2025, "Mean Flows for One-step Generative Modeling").

On the linear path z_t = (1 - t) x0 + t eps (t = 0 data, t = 1 noise), the network predicts the average
velocity u(z_t, r, t) = 1/(t - r) int_r^t v(z_tau, tau) dtau over [r, t] (eq. 3). Differentiating
(t - r) u = int_r^t v in t gives the MeanFlow identity (eq. 6)
    u(z_t, r, t) = v(z_t, t) - (t - r) d/dt u(z_t, r, t),   d/dt u = v . grad_z u + du/dt   (eq. 8),
a JVP of the network with tangent (v, 0, 1) in (z, r, t). The loss regresses u on the stop-gradient
target u_tgt = v - (t - r) d/dt u (eq. 10), with v the conditional velocity eps - x0 (or a teacher's
velocity, for distillation). (r, t) are two logit-normal draws sorted so that r <= t, and r = t for a
share 1 - ratio of the batch (Sec. 4.3 / Table 1a: 25% r != t). The official PyTorch code (py-meanflow,
models/time_sampler.py) also draws r from its own distribution (CIFAR-10: logit-normal P_mean_r = -4.0,
P_std_r = 1.6 beside t's -0.6, 1.6) and pairs them its "v1" way: r = t for a share 1 - ratio (0.75 there), then
r = min(r, t); here `second_time_sampler` and pairing="clipped" (experiments/objectives/mean_flow_cifar10.yaml). Adaptive loss weighting (Sec. 4.3,
after Geng et al. 2024): w = sg(1 / (||Delta||^2 + c)^p). The backbone takes r as its second time input
(backbones/second_time.py): `net(z, t, cond, r=r)`; r = t is the instantaneous velocity, so every ODE
sampler also works with a MeanFlow network. Sampling: z_r = z_t - (t - r) u(z_t, r, t) (eq. 12).

Known limit (docs/few-step.md, the 2-D robustness suite): on multi-modal 2-D data the 1-step samples string out
between modes and narrow each mode. Their SW1 is 1.2-2.4x flow matching's, and it did not improve from 3,000 to
10,000 steps. Neither adaptive_p, nor ratio, nor the (r, t) sampling fixed it. adaptive_p = 0.5 improves the 2- and
4-step samples there (ring, 10,000 steps: 0.034 / 0.044 against 0.064 / 0.079); the default stays the paper's 1.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import check_jvp_method, network_jvp
from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data, checked_output
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import LinearPath
from lit_diffusion.objectives.teacher import translated_predictor
from lit_diffusion.objectives.time_samplers import LogitNormalTime, TimeSampler
from lit_diffusion.objectives.weightings import UniformWeighting
from lit_diffusion.samplers.base import velocity

PAIRINGS = ("sorted", "clipped")


def require_second_time(net, who: str = "MeanFlow") -> None:
    if getattr(net, "second_time", True) is False:
        raise ValueError(f"{who} needs a backbone with the second time input r; build "
                         f"{type(net).__name__} with second_time=True")


def call_with_second_time(net, x, t, cond, r, who: str = "MeanFlow"):
    """net(x, t, cond, r=r), with an error that says what is missing when the backbone has no second time."""
    require_second_time(net, who)
    try:
        return net(x, t, cond, r=r)
    except TypeError as err:
        if "'r'" not in str(err):
            raise
        raise ValueError(f"{who} needs a backbone with the second time input r (forward(x, t, cond, r=None)); "
                         f"{type(net).__name__} has none") from err


class MeanFlow(DiffusionObjective):
    """Args:
        ratio: share of the batch with r != t (0.25 in the paper's ImageNet runs, Table 1a); with
            pairing="clipped" the share drawn apart before r = min(r, t) (0.75 in the CIFAR-10 run).
        time_mean, time_std: logit-normal (r, t) distribution (-0.4, 1.0: Table 1b).
        time_sampler: t's distribution instead of that logit-normal (and r's, unless second_time_sampler).
        second_time_sampler: r's own distribution (the official CIFAR-10 code: logit-normal -4.0, 1.6); None:
            r is drawn like t.
        pairing: how the two draws become (r, t): "sorted" (the paper's Sec. 4.3 and the official code's "v0":
            t = max, r = min, then r = t for a share 1 - ratio) or "clipped" (the official code's "v1", its
            CIFAR-10 default: r = t for a share 1 - ratio of the draws, then r = min(r, t)).
        adaptive_p, adaptive_c: adaptive weighting power and constant (p = 1, c = 1e-3; p = 0: plain MSE).
        jvp: "forward" (torch.func.jvp) or "finite_difference" (contract.network_jvp).
        teacher, teacher_net: optional trained objective and network whose PF-ODE velocity replaces the
            conditional one in the target (distillation).
    """

    default_sampler = "mean_flow"
    default_nfe = 1

    def __init__(self, ratio: float = 0.25, time_mean: float = -0.4, time_std: float = 1.0,
                 adaptive_p: float = 1.0, adaptive_c: float = 1e-3, jvp: str = "forward",
                 teacher: DiffusionObjective | None = None, teacher_net=None, time_sampler: TimeSampler | None = None,
                 label_dropout: float = 0.0, null_label: int | None = None,
                 second_time_sampler: TimeSampler | None = None, pairing: str = "sorted"):
        if pairing not in PAIRINGS:
            raise ValueError(f"MeanFlow: unknown pairing {pairing!r}; choose 'sorted' (the paper, official v0) or "
                             f"'clipped' (the official CIFAR-10 code, v1)")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"MeanFlow: ratio (share of r != t) must lie in [0, 1], got {ratio}")
        if adaptive_p < 0 or adaptive_c <= 0:
            raise ValueError(f"MeanFlow: need adaptive_p >= 0 and adaptive_c > 0, got {adaptive_p}, {adaptive_c}")
        if (teacher is None) != (teacher_net is None):
            raise ValueError("MeanFlow: give both teacher and teacher_net, or neither")
        super().__init__(LinearPath(), QuantityParameterisation("velocity"), time_sampler or LogitNormalTime(time_mean, time_std),
                         UniformWeighting(), label_dropout, null_label)
        self.ratio, self.adaptive_p, self.adaptive_c = float(ratio), float(adaptive_p), float(adaptive_c)
        self.second_time_sampler, self.pairing = second_time_sampler, pairing
        self.jvp = check_jvp_method(jvp)
        self.teacher = teacher
        if isinstance(teacher_net, torch.nn.Module):
            teacher_net = teacher_net.requires_grad_(False).eval()
        self.teacher_net = teacher_net

    # -- the network as an average velocity ----------------------------------------------------------
    def average_velocity(self, net, z: torch.Tensor, r, t, cond=None) -> torch.Tensor:
        """u(z, r, t); r, t floats, 0-dim or (B,) tensors with r <= t."""
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        r = torch.as_tensor(r, dtype=z.dtype, device=z.device).expand(z.shape[0])
        if bool((r > t + 1e-6).any()):
            raise ValueError(f"MeanFlow: the interval start r must not exceed t (r <= t), got r={r.max().item():.4g}"
                             f" > t={t[r.argmax()].item():.4g}")
        return checked_output(call_with_second_time(net, z, t, cond, r), z)

    def predict(self, net, x_t, t, cond=None) -> Prediction:
        """The instantaneous velocity u(z, t, t) = v(z, t), read as (x0, eps)."""
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        c = PathCoefficients.at(self.path, t, x_t)
        return self.parameterisation.to_prediction(self.average_velocity(net, x_t, c.t, c.t, cond), x_t, c)

    # -- training --------------------------------------------------------------------------------------
    def sample_times(self, batch: int, generator=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, t), each (B,) float32, r <= t: t's draw, then r's (from second_time_sampler when given), then
        one uniform per sample that decides r = t, in that order (the official code's order)."""
        a = self.time_sampler.sample(batch, self.path, generator=generator, device=device)
        b = (self.second_time_sampler or self.time_sampler).sample(batch, self.path, generator=generator,
                                                                    device=device)
        u = torch.rand(batch, generator=generator, device=device)
        if self.pairing == "clipped":  # official v1: tie first (u < 1 - ratio, their mask), then r <= t
            return torch.minimum(torch.where(u < 1.0 - self.ratio, a, b), a), a
        t, r = torch.maximum(a, b), torch.minimum(a, b)
        return torch.where(u < self.ratio, r, t), t

    def conditional_velocity(self, x0, noise, z, t, cond):
        if self.teacher is None:
            return noise - x0  # d/dt of (1 - t) x0 + t eps
        with torch.no_grad():
            pred = translated_predictor(self.teacher, self.teacher_net, self.path, cond)(z, t)
            return velocity(self.path, pred, t).to(z.dtype)

    def target(self, net, z, r, t, v, cond) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, sg(u_tgt)) at (z, r, t) with velocity v: eq. 10, the JVP with tangent (v, 0, 1)."""
        try:
            u, dudt = network_jvp(net, z, t, v, torch.ones_like(t), cond, r=r, tangent_r=torch.zeros_like(r),
                                  method=self.jvp)
        except TypeError as err:
            if "'r'" not in str(err):
                raise
            raise ValueError(f"MeanFlow needs a backbone with the second time input r (forward(x, t, cond, "
                             f"r=None)); {type(net).__name__} has none") from err
        u = checked_output(u, z)
        shape = (-1,) + (1,) * (z.ndim - 1)
        return u, (v - (t - r).reshape(shape) * dudt.to(z.dtype)).detach()

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        x0 = checked_data(x0)
        require_second_time(net)
        r, t = self.sample_times(x0.shape[0], generator, x0.device)
        r, t = r.to(x0.dtype), t.to(x0.dtype)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        c = PathCoefficients.at(self.path, t, x0)
        z = c.alpha * x0 + c.sigma * noise
        cond = self.drop_labels(cond, generator)
        v = self.conditional_velocity(x0, noise, z, t, cond)
        u, u_tgt = self.target(net, z, r, t, v, cond)
        err = (u - u_tgt).pow(2).flatten(1).sum(1)  # ||Delta||^2
        w = (err.detach() + self.adaptive_c).pow(-self.adaptive_p) if self.adaptive_p > 0 else 1.0
        return LossOutput(w * err, t, {"raw_error": err.detach()})

    # -- sampling --------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_with_info(self, net, noise, sampler: str | None = None, nfe: int | None = None, cond=None,
                         guidance: float = 1.0, generator=None, grid: str | None = None, guidance_interval=None,
                         **options):
        if (sampler or self.default_sampler) == "mean_flow":
            if guidance != 1.0:
                raise ValueError("MeanFlow's 'mean_flow' sampler takes no classifier-free guidance at sampling "
                                 "time (the paper trains it in); use guidance=1")
            if options.get("x0_threshold") is not None:
                raise ValueError("x0_threshold applies to the ODE samplers' predictions, not to the 'mean_flow' "
                                 "sampler's average velocity")
            options["average_velocity"] = lambda z, r, t: self.average_velocity(net, z, r, t, cond)
        return super().sample_with_info(net, noise, sampler=sampler, nfe=nfe, cond=cond, guidance=guidance,
                                        generator=generator, grid=grid, guidance_interval=guidance_interval,
                                        **options)
