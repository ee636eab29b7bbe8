"""INDM: Implicit Nonlinear Diffusion Model (Kim et al. 2022, "Maximum Likelihood Training of Implicit
Nonlinear Diffusion Models", NeurIPS). A flow z = g(x) maps data to a latent, the linear VP SDE runs on z,
and flow and score network are trained jointly on the NELBO in data space (their sec. 3; change of variables):

  -log p(x) <= NELBO(x) = NELBO_z(g(x)) - log|det dg/dx|,

NELBO_z the continuous-time bound of the latent diffusion with likelihood weighting (Song et al. 2021,
"Maximum Likelihood Training of Score-Based Diffusion Models", Theorem 1, lambda = g^2), truncated at
t_min = eps with a Gaussian decoder there (Kingma et al. 2021, VDM, secs. 3-4, in continuous time):

  NELBO_z(z) = KL(q(z_1|z) || N(0, sigma_1^2 I))                      prior
             + E[-log N(z; z_eps / alpha_eps, (sigma_eps / alpha_eps)^2 I)]  reconstruction (closed form)
             + 1/2 int_eps^1 -dSNR/dt E||z_hat - z||^2 dt                 diffusion (likelihood weighting)

All terms are reported per dimension, in nats. With g the identity this is the continuous VP objective
with likelihood weighting (x 1/2, plus terms that do not depend on the network). The time integral is
estimated at one t per sample, drawn uniformly in log-SNR by default (importance sampling, Song et al.
2021 sec. 5; Kim et al. 2022 use it too) or uniformly in t.

`net` is a backbones.INDMNetwork: net.flow is g, net(z_t, t, cond) the score network on z.
Sampling: any shared sampler on z from the VP prior, then x = g^-1(z).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data, checked_output
from lit_diffusion.objectives.likelihood_weighting import LikelihoodWeighting, d_log_snr, LogSNRUniformTime, UniformTimeDensity
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import VPLinearPath
from lit_diffusion.samplers import SamplerOutput


class NELBOTerms(NamedTuple):
    """Per-sample terms (B,) in nats per dimension; nelbo = diffusion + prior + reconstruction - log_det."""

    nelbo: torch.Tensor
    diffusion: torch.Tensor
    prior: torch.Tensor
    reconstruction: torch.Tensor
    log_det: torch.Tensor
    t: torch.Tensor


class INDM(DiffusionObjective):
    """Args:
        prediction: the score network's target on z: "eps", "x0" or "v".
        beta_min / beta_max: the linear VP schedule on z (Song et al. 2021, eq. 33).
        t_min: the truncation eps of the time integral (1e-5 for likelihood, as in both papers).
        importance_sampling: draw t uniformly in log-SNR (the variance reduction of t) instead of in t.
        dequantize_bins: for discrete data scaled to [-1, 1] (e.g. 256 for 8-bit images), add uniform noise of
            one bin's width 2 / bins to x in training (uniform dequantization, as both papers do); None: off.
        label_dropout / null_label: classifier-free guidance as for the other objectives.
    """

    # ancestral (DDPM) steps on z: on a 2-D Gaussian in a plain loop (identity flow, 400 steps) the moment error
    # is 0.34 against 2.72 with Euler@100, whose ODE needs the likelihood-weighted eps at high noise too precisely
    default_sampler = "ddpm"
    default_nfe = 100
    edit_refusal = ("INDM samples z = g(x) in its flow's latent space, so its predictions are of z, not of the "
                    "pixels an edit keeps or noises")

    def __init__(self, prediction: str = "eps", beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-5,
                 importance_sampling: bool = True, dequantize_bins: int | None = None, label_dropout: float = 0.0,
                 null_label: int | None = None):
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"INDM: prediction must be 'eps', 'x0' or 'v', got {prediction!r}")
        if not 0.0 < t_min < 0.1:
            raise ValueError(f"INDM: t_min (the truncation eps) must lie in (0, 0.1), got {t_min}")
        if dequantize_bins is not None and dequantize_bins < 2:
            raise ValueError(f"INDM: dequantize_bins must be >= 2 or None, got {dequantize_bins}")
        sampler = LogSNRUniformTime(t_min) if importance_sampling else UniformTimeDensity(t_min)
        super().__init__(VPLinearPath(beta_min, beta_max), QuantityParameterisation(prediction), sampler,
                         LikelihoodWeighting(), label_dropout, null_label)
        self.t_min, self.importance_sampling = float(t_min), bool(importance_sampling)
        self.dequantize_bins = dequantize_bins

    # -- the flow ---------------------------------------------------------------------------------------
    @staticmethod
    def encode(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = g(x) (B, ...) and log|det dg/dx| (B,) in nats."""
        flow = getattr(net, "flow", None)
        if flow is None or not callable(getattr(flow, "inverse", None)):
            raise TypeError(f"INDM needs an INDMNetwork (a flow and a score network), got {type(net).__name__}; "
                            "use backbones.INDMNetwork(flow=IdentityFlow(), score=...) for the linear diffusion")
        z, log_det = flow(x)
        if z.shape != x.shape:
            raise ValueError(f"INDM: the flow maps {tuple(x.shape)} to {tuple(z.shape)}; it must keep the shape")
        return z, log_det

    # -- the bound --------------------------------------------------------------------------------------
    def nelbo_terms(self, net, x0, cond=None, generator=None, noise=None,
                    control_variate: bool = False, t: torch.Tensor | None = None) -> NELBOTerms:
        """control_variate: subtract alpha_t^4 (||eps||^2 / D - 1), which has mean 0 (an unbiased, lower-variance
        estimate of the bound; the gradient is the same, so training does not need it). t: given times (B,)
        instead of draws from the time sampler."""
        x0 = checked_data(x0)
        if self.dequantize_bins is not None and torch.is_grad_enabled():  # training only
            u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            x0 = x0 + (u - 0.5) * (2.0 / self.dequantize_bins)
        z, log_det = self.encode(net, x0)
        if t is None:
            t = self.time_sampler.sample(x0.shape[0], self.path, generator=generator, device=x0.device)
        if noise is None:
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        elif noise.shape != z.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not match x0 shape {tuple(z.shape)}")
        c = PathCoefficients.at(self.path, t, z)
        z_t = c.alpha * z + c.sigma * noise
        raw = checked_output(net(self.parameterisation.net_input(z_t, c), c.t, self.drop_labels(cond, generator)), z_t)
        target = self.parameterisation.target(Prediction(z, noise.to(z.dtype)), z_t, c)
        density = self.time_sampler.density(c.t, self.path)
        if control_variate:  # c(t) (||eps||^2 / D - 1) has mean 0; c = alpha^4 is the optimal coefficient for
            # unit-variance Gaussian data (exact at small t where the error is ||eps||^2, and 0 at large t)
            eps_hat = self.parameterisation.to_prediction(raw, z_t, c).eps
            mse = (eps_hat - noise).pow(2).flatten(1).mean(1)
            mse = mse - c.alpha.reshape(-1) ** 4 * (noise.pow(2).flatten(1).mean(1) - 1.0)
            diffusion = -0.5 * d_log_snr(self.path, c.t) * mse / density
        else:
            mse = (raw - target).pow(2).flatten(1).mean(1)
            diffusion = 0.5 * self.weighting(c, self.parameterisation) * mse / density
        ends = torch.tensor([self.t_min, 1.0], dtype=torch.float64)
        alpha, sigma = self.path.alpha(ends), self.path.sigma(ends)
        prior = 0.5 * float(alpha[1] / sigma[1]) ** 2 * z.pow(2).flatten(1).mean(1)  # KL to N(0, sigma_1^2 I)
        recon = 0.5 * math.log(2 * math.pi * math.e * float(sigma[0] / alpha[0]) ** 2)
        log_det = log_det / x0[0].numel()
        return NELBOTerms(diffusion + prior + recon - log_det, diffusion, prior,
                          torch.full_like(prior, recon), log_det, t)

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        terms = self.nelbo_terms(net, x0, cond, generator=generator, noise=noise)
        return LossOutput(terms.nelbo, terms.t)

    @torch.no_grad()
    def nelbo(self, net, x0, cond=None, draws: int = 64, generator=None) -> torch.Tensor:
        """A Monte Carlo NELBO per sample (B,), nats per dimension, averaged over `draws` (t, noise) draws:
        t stratified (one draw in each 1/draws quantile of the time sampler) and the control variate on."""
        total = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
        for k in range(draws):
            u = (k + torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float64)) / draws
            t = self.time_sampler.quantile(u, self.path)
            total += self.nelbo_terms(net, x0, cond, generator=generator, control_variate=True, t=t).nelbo.double()
        return total / draws

    # -- sampling ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_with_info(self, net, noise, sampler=None, nfe=None, cond=None, guidance: float = 1.0,
                         generator=None, grid=None, guidance_interval=None, **options) -> SamplerOutput:
        """Samples z with a shared sampler on the VP path, then x = g^-1(z)."""
        self.encode(net, noise[:1])  # fail early (and by name) when net has no flow or the shape does not fit
        out = super().sample_with_info(net, noise, sampler=sampler, nfe=nfe, cond=cond, guidance=guidance,
                                       generator=generator, grid=grid, guidance_interval=guidance_interval, **options)
        return SamplerOutput(net.flow.inverse(out.x0), out.nfe)

    def __repr__(self) -> str:
        return (f"INDM(path={self.path}, parameterisation={self.parameterisation}, time_sampler={self.time_sampler}, "
                f"t_min={self.t_min})")
