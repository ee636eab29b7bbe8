"""Exact conversions among the quantities a diffusion network can predict, on any Gaussian path.

With x_t = alpha x0 + sigma eps (and dots for time derivatives):
  x0        the clean sample
  eps       the noise
  v         alpha eps - sigma x0                      (Salimans & Ho 2022, generalised off VP)
  velocity  dx_t/dt = alpha' x0 + sigma' eps          (flow matching, Lipman et al. 2023)
  score     grad log p(x_t) = -eps / sigma            (at the posterior mean, Vincent 2011)
Every conversion goes through the pair (x0, eps): given x_t and one quantity, both are determined.
This is the only place where these formulas live.
"""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients, Prediction  # re-exported: the math contract

QUANTITIES = ("x0", "eps", "v", "velocity", "score")


def check_quantity(kind: str) -> None:
    if kind not in QUANTITIES:
        raise ValueError(f"unknown prediction quantity {kind!r}; known: {list(QUANTITIES)}")


def to_prediction(kind: str, value: torch.Tensor, x_t: torch.Tensor, c: PathCoefficients) -> Prediction:
    """(x0, eps) from x_t and one predicted quantity."""
    check_quantity(kind)
    a, s, da, ds = c.alpha, c.sigma, c.d_alpha, c.d_sigma
    if kind == "x0":
        return Prediction(value, (x_t - a * value) / s)
    if kind == "eps":
        return Prediction((x_t - s * value) / a, value)
    if kind == "v":
        norm = a**2 + s**2
        return Prediction((a * x_t - s * value) / norm, (s * x_t + a * value) / norm)
    if kind == "velocity":
        # solve [x_t, u] = [[a, s], [a', s']] [x0, eps]
        det = a * ds - s * da
        return Prediction((ds * x_t - s * value) / det, (a * value - da * x_t) / det)
    eps = -s * value  # score
    return Prediction((x_t - s * eps) / a, eps)


def from_prediction(kind: str, pred: Prediction, c: PathCoefficients) -> torch.Tensor:
    """One quantity from (x0, eps)."""
    check_quantity(kind)
    x0, eps = pred
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    if kind == "v":
        return c.alpha * eps - c.sigma * x0
    if kind == "velocity":
        return c.d_alpha * x0 + c.d_sigma * eps
    return -eps / c.sigma  # score


def convert(value: torch.Tensor, src: str, dst: str, x_t: torch.Tensor, c: PathCoefficients) -> torch.Tensor:
    """Convert a prediction of quantity `src` into quantity `dst` at (x_t, t)."""
    return from_prediction(dst, to_prediction(src, value, x_t, c), c)


def x0_sensitivity(kind: str, c: PathCoefficients) -> torch.Tensor:
    """d(quantity)/d(x0) at fixed x_t: the error of `kind` is this factor times the error in x0.

    Used to express a loss weighting given in x0 space (min-SNR, EDM) in the network's target space.
    """
    check_quantity(kind)
    a, s, da, ds = c.alpha, c.sigma, c.d_alpha, c.d_sigma
    factors = {
        "x0": torch.ones_like(a),
        "eps": -a / s,
        "v": -(a**2 + s**2) / s,
        "velocity": da - ds * a / s,
        "score": a / s**2,
    }
    return factors[kind]
