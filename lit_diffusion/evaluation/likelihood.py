"""Negative log-likelihood through the probability-flow ODE (Song et al. 2021, sec. 4.3, eq. 39; Chen et
al. 2018 for the instantaneous change of variables):

log p_0(x_0) = log p_1(x_1) + int_0^1 div v(x_t, t) dt,

integrated with dopri5 from the data at t_start to t = 1 with prior N(0, sigma_1^2 I). The divergence
is exact (one backward pass per dimension) for small dimensions and Hutchinson's estimator
(Rademacher probes, Grathwohl et al. 2019) otherwise. Pure torch.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.samplers import dopri5, velocity


def _divergence(v: torch.Tensor, x: torch.Tensor, exact: bool, probes: torch.Tensor | None) -> torch.Tensor:
    if exact:
        flat_v = v.flatten(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(flat_v.shape[1]):
            div = div + torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=True)[0].flatten(1)[:, i]
        return div
    (grad,) = torch.autograd.grad((v * probes).sum(), x)
    return (grad * probes).flatten(1).sum(1)


def log_likelihood(objective, net, x: torch.Tensor, cond=None, exact: bool | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5, t_start: float | None = None,
                   generator=None) -> tuple[torch.Tensor, int]:
    """log p(x) in nats per sample (B,), and the number of network evaluations used.

    exact: exact divergence; default when x has at most 16 dimensions per sample.
    t_start: where integration starts (default the path's t_min, or 1e-5 where that is 0).
    """
    if not hasattr(objective, "path") or not hasattr(objective, "predict"):
        raise TypeError(f"log_likelihood needs an objective with a velocity field, got {type(objective).__name__}")
    dims = x[0].numel()
    exact = dims <= 16 if exact is None else exact
    t_start = (objective.path.t_min or 1e-5) if t_start is None else t_start
    probes = None
    if not exact:
        probes = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
    shape = x.shape

    def augmented(t: float, state: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xt = state[:, :-1].reshape(shape).detach().requires_grad_(True)
            v = velocity(objective.path, objective.predict(net, xt, t, cond), t)
            div = _divergence(v, xt, exact, probes)
        return torch.cat([v.detach().flatten(1), div.detach()[:, None]], dim=1)

    state0 = torch.cat([x.flatten(1), torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)
    state1, calls = dopri5(augmented, state0, t_start, 1.0, rtol=rtol, atol=atol)
    x1, integral = state1[:, :-1], state1[:, -1]
    sigma_1 = float(objective.path.sigma(torch.tensor(1.0, dtype=torch.float64)))
    log_prior = -0.5 * (x1**2).sum(1) / sigma_1**2 - dims * math.log(sigma_1) - 0.5 * dims * math.log(2 * math.pi)
    return log_prior + integral, calls


def bits_per_dim(objective, net, x: torch.Tensor, cond=None, data_bins: int | None = None, **kwargs) -> torch.Tensor:
    """-log2 p(x) / D per sample. With data_bins (e.g. 256 for 8-bit images scaled to [-1, 1]) the density
    is turned into a probability of the bin of width 2 / data_bins: + log2(data_bins / 2) per dimension."""
    log_p, _ = log_likelihood(objective, net, x, cond, **kwargs)
    bpd = -log_p / (x[0].numel() * math.log(2))
    if data_bins is not None:
        bpd = bpd + math.log2(data_bins / 2)
    return bpd
