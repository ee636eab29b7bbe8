"""Classifier-free guidance (Ho & Salimans 2022) as a combination of two predictions, with an optional
guidance interval (Kynkaanniemi et al. 2024): guidance applies only for t in (t_lo, t_hi]."""
from __future__ import annotations

from lit_diffusion.contract import Prediction


def guidance_active(t: float, interval: tuple[float, float] | None) -> bool:
    if interval is None:
        return True
    lo, hi = interval
    return lo < t <= hi


def combine_guided(cond: Prediction, uncond: Prediction, scale: float) -> Prediction:
    """uncond + scale (cond - uncond) on both x0 and eps; the pair stays consistent with x_t because the
    weights (1 - scale, scale) sum to one. scale = 1: conditional; scale = 0: unconditional."""
    return Prediction(uncond.x0 + scale * (cond.x0 - uncond.x0), uncond.eps + scale * (cond.eps - uncond.eps))


def check_guidance(scale: float, interval) -> None:
    if scale < 0:
        raise ValueError(f"guidance scale must be >= 0, got {scale}")
    if interval is not None:
        lo, hi = interval
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"guidance interval must satisfy 0 <= lo < hi <= 1, got {interval}")
