"""Post-hoc EMA reconstruction, the math only (pure torch, float64): Karras et al. 2024, "Analyzing and
Improving the Training Dynamics of Diffusion Models" (EDM2), sec. 3.2 and App. C.2.

A power-function EMA with exponent gamma, after t updates of iterates theta_1..theta_t, is a weighted
average of them (its update beta_t = (1 - 1/t)^(gamma + 1), EDM2 eq. 2, telescopes):

    ema(gamma, t) = sum_{k <= t} w_k theta_k,   w_k = (k^(gamma+1) - (k-1)^(gamma+1)) / t^(gamma+1)    (1)

the discrete form of EDM2's continuous profile (gamma + 1) tau^gamma / t^(gamma+1) on [0, t] (their eq. 3
and App. C.2). Given snapshots i = 1..N with profiles w^i (gamma_i, t_i), the EMA of a target (gamma_r, t_r)
is approximated by sum_i x_i ema_i with x minimising || sum_i x_i w^i - w^r ||_2 over the iterate index k:
the normal equations G x = b, G_ij = <w^i, w^j>, b_i = <w^i, w^r> (App. C.2 solves the same system with the
continuous inner products; here the sums over k are exact for the discrete EMA that training runs).

What is exact: when w^r lies in the span of the w^i, sum_i x_i ema_i equals the directly tracked EMA
(up to float rounding). Between two consecutive snapshot times every profile restricted to those steps is
one of the functions k -> k^(g+1) - (k-1)^(g+1), g among the stored gammas, so the span holds every
weighting of the iterates when each gap between snapshot times (and before the first) is at most the number
of stored profiles: snapshots every step with one profile, every 2 steps with two (EDM2's setting).
With sparser snapshots the target is generally not reachable and the result is the least-squares
approximation; its profile error is reported as `relative_residual`, and for every parameter
|reconstructed - direct| <= ||residual profile||_2 * ||(theta_1..theta_t_r)||_2 (Cauchy-Schwarz).
A target equal to a stored profile at a snapshot time is always exact.

The coefficients are normalised to sum to 1 (EDM2's final step), so the fitted profile is a weighting of the
iterates like every EMA; exact fits are unchanged (their sum is already 1 up to rounding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lit_diffusion.training.ema import gamma_from_sigma_rel

__all__ = ["Profile", "profile_weights", "Solution", "solve_posthoc_ema", "gamma_from_sigma_rel"]


@dataclass(frozen=True)
class Profile:
    """A power-function EMA after `t` updates (t >= 1) with exponent `gamma` (> 0)."""

    gamma: float
    t: int


def _increments(gamma: float, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(k^(g+1) - (k-1)^(g+1)) / scale^(g+1) for k >= 1, scale >= k, without cancellation or overflow:
    (k/scale)^(g+1) * (1 - (1 - 1/k)^(g+1)) = -(k/scale)^(g+1) * expm1((g+1) log1p(-1/k))."""
    p = gamma + 1.0
    head = torch.exp(p * torch.log(k / scale))
    tail = -torch.expm1(p * torch.log1p(-1.0 / k))  # = 1 at k = 1 (log1p(-1) = -inf)
    return head * tail


def profile_weights(profile: Profile, length: int) -> torch.Tensor:
    """The weights w_1..w_length of eq. (1) (zero after t), float64: the oracle the tests compare against."""
    k = torch.arange(1, length + 1, dtype=torch.float64)
    w = _increments(profile.gamma, k.clamp(max=profile.t), torch.tensor(float(profile.t), dtype=torch.float64))
    return torch.where(k <= profile.t, w, torch.zeros_like(w))


@dataclass(frozen=True)
class Solution:
    coefficients: torch.Tensor  # x (N,), float64: reconstruction = sum_i x_i snapshot_i
    relative_residual: float  # || sum_i x_i w^i - w^r || / || w^r ||


def _gram(profiles: list[Profile]) -> torch.Tensor:
    """<w^i, w^j> for every pair, exact sums over k, in O(types^2 * T + N^2 * M) for M distinct times.

    Split the steps at the distinct times s_1 < ... < s_M; on segment m, (s_{m-1}, s_m], every profile is
    f_g(k) / t^(g+1) = h_g(k) * (s_m / t)^(g+1) with h_g(k) = f_g(k) / s_m^(g+1) in [0, 1]. So
    <w^i, w^j> = sum_m R_im S_m(g_i, g_j) R_jm with R_im = (s_m / t_i)^(g_i+1) where s_m <= t_i (else 0) and the
    segment sums S_m(a, b) = sum_{k in segment m} h_a(k) h_b(k): every factor is <= 1, nothing overflows at
    large g or t, and each block of the matrix is one product R_a diag(S) R_b'."""
    times = sorted({p.t for p in profiles})
    ends = torch.tensor(times, dtype=torch.float64)
    lengths = torch.diff(torch.tensor([0] + times))
    k = torch.arange(1, times[-1] + 1, dtype=torch.float64)
    segment = torch.repeat_interleave(torch.arange(len(times)), lengths)  # segment index of each step k
    scale = ends[segment]
    t = torch.tensor([float(p.t) for p in profiles], dtype=torch.float64)
    g = torch.tensor([p.gamma for p in profiles], dtype=torch.float64)
    ratio = ends[None, :] / t[:, None]
    rows = torch.where(ratio <= 1.0, ratio.clamp(max=1.0) ** (g[:, None] + 1.0), torch.zeros_like(ratio))
    gammas = sorted({p.gamma for p in profiles})
    h = {a: _increments(a, k, scale) for a in gammas}
    members = {a: [i for i, p in enumerate(profiles) if p.gamma == a] for a in gammas}
    gram = torch.zeros(len(profiles), len(profiles), dtype=torch.float64)
    for a in gammas:
        for b in gammas:
            sums = torch.zeros(len(times), dtype=torch.float64).index_add_(0, segment, h[a] * h[b])
            ia, ib = members[a], members[b]
            gram[torch.tensor(ia)[:, None], torch.tensor(ib)[None, :]] = (rows[ia] * sums) @ rows[ib].T
    return gram


def solve_posthoc_ema(snapshots: list[Profile], target: Profile) -> Solution:
    """The least-squares coefficients of EDM2 App. C.2 for `target` from `snapshots` (each t <= target.t).

    The normal equations are solved through an eigen-decomposition of the Gram matrix that drops directions
    below 1e-12 of the largest eigenvalue: the minimum-norm solution when snapshots are redundant (two profiles
    at every step span each weighting twice), and no blow-up from nearly parallel profiles."""
    if not snapshots:
        raise ValueError("post-hoc EMA: no snapshots to reconstruct from")
    late = [p.t for p in snapshots if p.t > target.t]
    if late:
        raise ValueError(f"post-hoc EMA: snapshots at t={late[:3]} lie after the target t={target.t}; pass only "
                         "snapshots taken at or before the target step")
    if target.t < 1 or any(p.t < 1 for p in snapshots):
        raise ValueError("post-hoc EMA: every profile needs t >= 1 (at least one update)")
    gram = _gram([*snapshots, target])
    g, b, c = gram[:-1, :-1], gram[:-1, -1], float(gram[-1, -1])
    # scale to unit diagonal first: profiles of early snapshots have much larger norms than late ones
    d = g.diagonal().clamp_min(torch.finfo(torch.float64).tiny).rsqrt()
    eigenvalues, vectors = torch.linalg.eigh(d[:, None] * g * d[None, :])
    keep = eigenvalues > eigenvalues.max() * 1e-12
    inverse = (vectors[:, keep] / eigenvalues[keep]) @ vectors[:, keep].T
    x = d * (inverse @ (d * b))
    # Every profile's weights sum to 1, so sum(x) is the total weight of the fitted profile; least squares leaves
    # it off 1 (by 1e-3 and more with sparse snapshots), which scales every reconstructed parameter. Normalise as
    # EDM2 does (NVlabs/edm2 training/phema.py, solve_posthoc_coefficients, X / sum(X)): a parameter constant
    # through training comes back exactly constant. The residual below is that of the normalised fit.
    x = x / x.sum()
    # ||W x - w_r||^2 = x'Gx - 2 x'b + c, clamped: rounding can take an exact fit slightly below zero
    squared = float(x @ g @ x - 2 * x @ b + c)
    return Solution(coefficients=x, relative_residual=math.sqrt(max(squared, 0.0) / c))
