"""The math contract shared by objectives and samplers (DESIGN.md §2); imports only torch.

One time convention: t in [0, 1], t = 0 is data, t = 1 is noise, and a Gaussian path is
x_t = alpha_t x0 + sigma_t eps with eps ~ N(0, I). A path object provides alpha(t), sigma(t),
d_alpha(t), d_sigma(t) as functions of a time tensor.

- `Prediction(x0, eps)`: a denoiser's answer at (x_t, t); every other quantity (v, velocity, score)
  is a function of this pair (see objectives/conversions.py). `VariancePrediction(x0, eps, var_frac)` adds
  a learned reverse-step variance (Improved DDPM) that only DDPM ancestral sampling reads.
- `network_jvp(net, x, t, tx, tt, ...)`: forward-mode derivative of a backbone (DESIGN §3), below.
- `PathCoefficients(t, alpha, sigma, d_alpha, d_sigma)`: a path evaluated at t, in one of two forms:
  `at(path, t, x)` gives tensors shaped to broadcast against a batch x (B, 1, 1, ...) in x's dtype
  (what objectives use); `at_time(path, t)` gives Python floats evaluated in float64 at one time
  shared by the whole batch (what the per-step samplers use).
"""
from __future__ import annotations

import functools
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple, Union

import torch

Scalar = Union[float, torch.Tensor]


class Prediction(NamedTuple):
    """A denoiser's answer at (x_t, t): the clean-sample and noise estimates, x_t = alpha x0 + sigma eps."""

    x0: torch.Tensor
    eps: torch.Tensor


class VariancePrediction(NamedTuple):
    """A Prediction plus the variance of the reverse step, as Improved DDPM learns it (Nichol & Dhariwal 2021,
    eq. 15): var_frac in [0, 1] (tensor broadcasting against x0) interpolates log Sigma between the posterior
    variance beta-tilde (0) and beta (1) of the step being taken. Only DDPM ancestral sampling reads var_frac;
    every other sampler uses x0 and eps (the mean)."""

    x0: torch.Tensor
    eps: torch.Tensor
    var_frac: torch.Tensor


@dataclass
class PathCoefficients:
    """alpha_t, sigma_t and their time derivatives at t: tensors (B, 1, 1, ...) or Python floats."""

    t: Scalar  # (B,) tensor for the tensor form, a float for the float form
    alpha: Scalar
    sigma: Scalar
    d_alpha: Scalar
    d_sigma: Scalar
    path: object = None

    @classmethod
    def at(cls, path, t: torch.Tensor, x: torch.Tensor) -> "PathCoefficients":
        """Evaluate `path` at t ((B,) or scalar) in x's dtype, reshaped to broadcast over x's shape."""
        t = t.to(device=x.device, dtype=x.dtype)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
        shape = (-1,) + (1,) * (x.ndim - 1)
        values = (path.alpha(t), path.sigma(t), path.d_alpha(t), path.d_sigma(t))
        return cls(t, *(v.reshape(shape) for v in values), path=path)

    @classmethod
    def at_time(cls, path, t: float) -> "PathCoefficients":
        """Evaluate `path` at one time t as Python floats, computed in float64."""
        tt = torch.tensor([float(t)], dtype=torch.float64)
        values = (float(f(tt)[0]) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma))
        return cls(float(t), *values, path=path)


# -- forward-mode derivatives through a backbone (DESIGN §3) ---------------------------------------------
# Forward-mode derivatives through a backbone: the JVP of net(x, t, cond, r) along a tangent of (x, t, r).
#
# Continuous-time consistency models (sCM, Lu & Song 2024, eq. 8) and MeanFlow (Geng et al. 2025, eq. 8)
# need the total time derivative of the network along the probability-flow ODE,
#     d/dt F(x_t, t) = (dx_t/dt) . grad_x F + dF/dt,
# which is one Jacobian-vector product with tangent (dx_t/dt, 1). Two methods:
#
# - "forward": `torch.func.jvp` (exact, one forward pass with dual numbers). Attention is forced onto
#   SDPA's math path, because the fused kernels (flash / memory-efficient / CPU flash) have no forward-mode
#   derivative. Works under bf16 autocast. The primal output keeps its autograd graph (the loss trains it).
# - "finite_difference": central differences (F(p + h v) - F(p - h v)) / 2h in float32 at least, plus one
#   plain forward pass for the primal; for backbones or kernels without forward-mode AD (e.g. fused
#   attention in torch.compile'd graphs). Three forward passes; error O(h^2).

JVP_METHODS = ("forward", "finite_difference")


def _math_attention():
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        return nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


@functools.cache
def _load_forward_ad_decompositions() -> None:
    """torch.func.jvp loads torch's own forward-AD decompositions on its first use, and they call torch.jit.script,
    whose deprecation FutureWarning then reached every MeanFlow/sCM user: torch's internal use, nothing they can
    change. Loaded once here with that one warning (message and category) filtered, every other warning kept."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        try:
            from torch._decomp import decompositions_for_jvp  # noqa: F401
        except ImportError:  # pragma: no cover - a torch without them loads nothing here
            pass


def _call(net, x, t, cond, r):
    return net(x, t, cond) if r is None else net(x, t, cond, r=r)


def check_jvp_method(method: str) -> str:
    if method not in JVP_METHODS:
        raise ValueError(f"unknown jvp method {method!r}; choose one of {list(JVP_METHODS)}")
    return method


def network_jvp(net, x: torch.Tensor, t: torch.Tensor, tangent_x: torch.Tensor, tangent_t: torch.Tensor,
                cond=None, r: torch.Tensor | None = None, tangent_r: torch.Tensor | None = None,
                method: str = "forward", step: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """(net(x, t, cond, r), d/deps net(x + eps tx, t + eps tt, cond, r + eps tr) at eps = 0).

    x (B, ...), t (B,), tangent_x like x, tangent_t like t; r and tangent_r (B,) or None (tangent_r None
    means 0). `step` is the finite-difference step h (in units of the tangent), ignored by "forward".
    """
    check_jvp_method(method)
    if tangent_x.shape != x.shape or tangent_t.shape != t.shape:
        raise ValueError(f"jvp tangents must match their inputs: x {tuple(x.shape)} vs {tuple(tangent_x.shape)}, "
                         f"t {tuple(t.shape)} vs {tuple(tangent_t.shape)}")
    if tangent_r is None and r is not None:
        tangent_r = torch.zeros_like(r)
    if method == "forward":
        if r is None:
            fn, primals, tangents = (lambda a, b: net(a, b, cond)), (x, t), (tangent_x, tangent_t)
        else:
            fn, primals, tangents = (lambda a, b, c: net(a, b, cond, r=c)), (x, t, r), (tangent_x, tangent_t, tangent_r)
        _load_forward_ad_decompositions()
        try:
            with _math_attention():
                return torch.func.jvp(fn, primals, tangents)
        except (RuntimeError, NotImplementedError) as err:
            if "forward AD" not in str(err) and "forward-mode" not in str(err) and "jvp" not in str(err).lower():
                raise
            raise RuntimeError(f"{type(net).__name__} cannot provide a forward-mode JVP (torch.func.jvp): {err}. "
                               f"Use jvp='finite_difference' instead.") from err
    out = _call(net, x, t, cond, r)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        h = step

        def shifted(sign: float) -> torch.Tensor:
            rr = None if r is None else r + sign * h * tangent_r
            return _call(net, x + sign * h * tangent_x, t + sign * h * tangent_t, cond, rr).to(work)

        d = ((shifted(1.0) - shifted(-1.0)) / (2 * h)).to(out.dtype)
    return out, d


__all__ = ["JVP_METHODS", "PathCoefficients", "Prediction", "VariancePrediction", "check_jvp_method", "network_jvp"]
