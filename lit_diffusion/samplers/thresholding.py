"""x0 clipping and dynamic thresholding as a prediction wrapper (like guidance), for image data in a known
range (e.g. [-1, 1]); never for latents or vectors, whose range is not bounded.

- "clip": x0 <- clamp(x0, lo, hi), as DDPM sampling does (Ho et al. 2020, their released code's
  clip_denoised; diffusers' DDPM/DDIM `clip_sample`).
- "dynamic": Imagen's dynamic thresholding (Saharia et al. 2022, Sec. 2.3): per sample, s = the p-th
  percentile of |x0| (p = 99.5%), s <- max(s, 1), x0 <- clamp(x0, -s, s) / s (range [-1, 1] data).
The noise estimate is recomputed from the clipped x0, eps = (x_t - alpha_t x0) / sigma_t, so the pair stays
consistent with x_t and every sampler uses the clipped prediction.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import Prediction
from lit_diffusion.samplers.base import path_values

THRESHOLDS = ("clip", "dynamic")


def thresholded(predict, path, kind: str, data_range: tuple[float, float] = (-1.0, 1.0), percentile: float = 0.995):
    """Wrap `predict(x, t) -> Prediction` so that x0 is clipped ("clip") or dynamically thresholded ("dynamic")."""
    if kind not in THRESHOLDS:
        raise ValueError(f"unknown x0 threshold {kind!r}; choose one of {list(THRESHOLDS)} or None")
    lo, hi = (float(v) for v in data_range)
    if not lo < hi:
        raise ValueError(f"x0 threshold: data_range must be (lo, hi) with lo < hi, got {data_range}")
    if kind == "dynamic" and (lo, hi) != (-1.0, 1.0):
        raise ValueError(f"dynamic thresholding assumes data in [-1, 1], got data_range={data_range}")
    if not 0.0 < percentile <= 1.0:
        raise ValueError(f"dynamic thresholding: percentile must lie in (0, 1], got {percentile}")

    def wrapped(x: torch.Tensor, t) -> Prediction:
        if x.ndim != 4:
            raise ValueError(f"x0 thresholding is for image batches (B, C, H, W) in a known range; got shape "
                             f"{tuple(x.shape)} (never use it for vectors or latents)")
        pred = predict(x, t)
        if kind == "clip":
            x0 = pred.x0.clamp(lo, hi)
        else:
            s = torch.quantile(pred.x0.abs().flatten(1).float(), percentile, dim=1).clamp_min(1.0).to(pred.x0)
            s = s.reshape(-1, 1, 1, 1)
            x0 = pred.x0.clamp(-s, s) / s
        alpha, sigma = path_values(path, t, x)
        return Prediction(x0, (x - alpha * x0) / sigma)

    return wrapped
