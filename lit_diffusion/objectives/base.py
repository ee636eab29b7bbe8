"""The shared machinery of Gaussian-path objectives: predict through a parameterisation, regress a
target at sampled times, and sample through the shared samplers. Subclasses only choose the pieces."""
from __future__ import annotations

from typing import NamedTuple

import torch

from lit_diffusion.contract import PathCoefficients, Prediction, VariancePrediction
from lit_diffusion.samplers import SamplerOutput, run_sampler
from lit_diffusion.samplers.guidance import check_guidance, combine_guided, guidance_active
from lit_diffusion.samplers.thresholding import thresholded

_LOW_PRECISION = (torch.bfloat16, torch.float16)


class LossOutput(NamedTuple):
    loss: torch.Tensor  # (B,) per-sample weighted loss
    t: torch.Tensor  # (B,) the time each sample was trained at (for loss-vs-t diagnostics)
    # name -> (B,) per-sample values the training loop logs as train/NAME beside the loss, e.g. "raw_error": the
    # unweighted error of an adaptively weighted loss (whose value stays near 1 by construction)
    extras: dict | None = None


def checked_output(raw, x: torch.Tensor) -> torch.Tensor:
    """The network's output, verified against the backbone contract and cast to x's dtype."""
    if not isinstance(raw, torch.Tensor):
        raise TypeError(f"the network returned {type(raw).__name__}; expected a Tensor shaped like its input")
    if raw.shape != x.shape:
        raise ValueError(f"network output shape {tuple(raw.shape)} does not match its input shape {tuple(x.shape)}")
    if not raw.is_floating_point():
        raise TypeError(f"network output dtype {raw.dtype} is not floating point")
    if raw.dtype != x.dtype:
        if raw.dtype not in _LOW_PRECISION:  # autocast outputs are upcast; anything else is a bug
            raise TypeError(f"network output dtype {raw.dtype} does not match input dtype {x.dtype}")
        raw = raw.to(x.dtype)
    return raw


def checked_data(x0: torch.Tensor) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got {getattr(x0, 'dtype', type(x0).__name__)}")
    if x0.ndim < 2 or x0.shape[0] == 0:
        raise ValueError(f"x0 must have shape (B, ...) with B >= 1, got {tuple(x0.shape)}")
    if x0.dtype in _LOW_PRECISION:  # objective math runs in float32 (DESIGN §2)
        x0 = x0.float()
    return x0


class DiffusionObjective:
    """path + parameterisation + time sampler + weighting, and optional label dropout for guidance."""

    default_sampler = "euler"
    default_nfe = 32
    # x0 threshold to sample image data in [-1, 1] with when the caller does not choose (DiffusionModule.sample_options;
    # never applied to latents or tensors); None: none. Chosen by measurement (benchmarks/x0_threshold_digits.py).
    default_x0_threshold: str | None = None
    # Editing (SDEdit, RePaint: objectives/editing.py) noises the data itself along the path and reads x0 of the
    # data back; an objective whose sampler state is not the data says why here (and editing refuses it).
    edit_refusal: str | None = None

    def __init__(self, path, parameterisation, time_sampler, weighting, label_dropout: float = 0.0,
                 null_label: int | None = None):
        if not 0.0 <= label_dropout < 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1), got {label_dropout}")
        if label_dropout > 0 and null_label is None:
            raise ValueError("label_dropout > 0 needs null_label (the backbone's reserved unconditional class)")
        self.path, self.parameterisation = path, parameterisation
        self.time_sampler, self.weighting = time_sampler, weighting
        self.label_dropout, self.null_label = float(label_dropout), null_label

    # -- training ---------------------------------------------------------------------------------
    def set_training_step(self, step: int, progress: float | None = None) -> None:
        """Called by the training loop before each step with the step and the share of the run done
        (images seen / max_images); objectives with curricula or warm-ups override it."""

    def drop_labels(self, cond, generator=None):
        if cond is None or self.label_dropout == 0.0:
            return cond
        drop = torch.rand(cond.shape, generator=generator, device=cond.device) < self.label_dropout
        return torch.where(drop, torch.full_like(cond, self.null_label), cond)

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        """Per-sample loss; `noise` pairs each x0 with a given eps (a coupling, e.g. for reflow)."""
        x0 = checked_data(x0)
        t = self.time_sampler.sample(x0.shape[0], self.path, generator=generator, device=x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not match x0 shape {tuple(x0.shape)}")
        c = PathCoefficients.at(self.path, t, x0)
        x_t = c.alpha * x0 + c.sigma * noise
        raw = checked_output(net(self.parameterisation.net_input(x_t, c), c.t, self.drop_labels(cond, generator)), x_t)
        target = self.parameterisation.target(Prediction(x0, noise.to(x0.dtype)), x_t, c)
        mse = (raw - target).pow(2).flatten(1).mean(1)
        return LossOutput(self.weighting(c, self.parameterisation) * mse, t)

    def loss(self, net, x0, cond=None, generator=None, noise=None) -> torch.Tensor:
        """Per-sample loss of shape (B,); the caller reduces it."""
        return self.loss_with_diagnostics(net, x0, cond, generator=generator, noise=noise).loss

    # -- prediction and sampling -------------------------------------------------------------------
    def predict(self, net, x_t: torch.Tensor, t, cond=None) -> Prediction:
        """(x0, eps) at (x_t, t); t a float, a 0-dim or a (B,) tensor."""
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        c = PathCoefficients.at(self.path, t, x_t)
        raw = checked_output(net(self.parameterisation.net_input(x_t, c), c.t, cond), x_t)
        return self.parameterisation.to_prediction(raw, x_t, c)

    def predictor(self, net, cond=None, guidance: float = 1.0, guidance_interval=None):
        """A sampler's predictor (x, t) -> Prediction, with classifier-free guidance when guidance != 1
        (conditional and unconditional halves batched into one network call)."""
        check_guidance(guidance, guidance_interval)
        if guidance == 1.0:
            return lambda x, t: self.predict(net, x, t, cond)
        if cond is None or self.null_label is None:
            raise ValueError("guidance != 1 needs class labels (cond) and the objective's null_label")
        null = torch.full_like(cond, self.null_label)

        def guided(x, t):
            if not guidance_active(float(t) if not isinstance(t, torch.Tensor) else float(t.max()), guidance_interval):
                return self.predict(net, x, t, cond)
            both = self.predict(net, torch.cat([x, x]), t, torch.cat([cond, null]))
            n = x.shape[0]
            out = combine_guided(Prediction(both.x0[:n], both.eps[:n]), Prediction(both.x0[n:], both.eps[n:]), guidance)
            if getattr(both, "var_frac", None) is None:
                return out
            return VariancePrediction(out.x0, out.eps, both.var_frac[:n])  # a learned variance: the conditional one

        return guided

    def prior(self, noise: torch.Tensor, t_max: float = 1.0) -> torch.Tensor:
        """x at t_max from standard normal noise: sigma_{t_max} * noise (the data mean is taken as 0)."""
        sigma = self.path.sigma(torch.tensor([t_max], dtype=torch.float64))
        return float(sigma) * noise

    @torch.no_grad()
    def sample_with_info(self, net, noise, sampler: str | None = None, nfe: int | None = None, cond=None,
                         guidance: float = 1.0, generator=None, grid: str | None = None,
                         guidance_interval=None, x0_threshold: str | None = None,
                         data_range: tuple[float, float] = (-1.0, 1.0), start: torch.Tensor | None = None,
                         t_max: float = 1.0, **options) -> SamplerOutput:
        """x0_threshold: None, "clip" or "dynamic" (samplers/thresholding.py), for image data in data_range.
        start, t_max: solve from x = start at t_max instead of the prior at 1 (SDEdit; the grid lies in [0, t_max])."""
        sampler = sampler or self.default_sampler
        nfe = self.default_nfe if nfe is None else nfe
        predict = self.predictor(net, cond, guidance, guidance_interval)
        if x0_threshold is not None:
            predict = thresholded(predict, self.path, x0_threshold, data_range)
        x_init = self.prior(noise) if start is None else start
        return run_sampler(sampler, self.path, predict, x_init, nfe=nfe, grid=grid, generator=generator, t_max=t_max,
                           **options)

    def sample(self, net, noise, sampler: str | None = None, nfe: int | None = None, cond=None,
               guidance: float = 1.0, generator=None, **options) -> torch.Tensor:
        """Samples x0 from standard normal `noise` (the shape of the output)."""
        return self.sample_with_info(net, noise, sampler=sampler, nfe=nfe, cond=cond, guidance=guidance,
                                     generator=generator, **options).x0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(path={self.path}, parameterisation={self.parameterisation}, "
                f"time_sampler={self.time_sampler}, weighting={self.weighting})")
