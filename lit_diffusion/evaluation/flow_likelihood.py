"""Data-space likelihood of a flow-plus-diffusion model (INDM, Kim et al. 2022): by the change of variables,
log p(x) = log p_z(g(x)) + log|det dg/dx|, with log p_z through the probability-flow ODE (likelihood.py)."""
from __future__ import annotations

import math

import torch

from lit_diffusion.evaluation.likelihood import log_likelihood


def flow_log_likelihood(objective, net, x: torch.Tensor, cond=None, **kwargs) -> tuple[torch.Tensor, int]:
    """log p(x) in nats per sample (B,) and the NFE. `objective.encode(net, x) -> (z, log_det)`; the ODE starts
    at the objective's truncation t_min unless t_start is given (other kwargs go to `log_likelihood`)."""
    if not hasattr(objective, "encode"):
        raise TypeError(f"flow_log_likelihood needs an objective with a flow (encode), got {type(objective).__name__}")
    kwargs.setdefault("t_start", getattr(objective, "t_min", None))
    with torch.no_grad():
        z, log_det = objective.encode(net, x)
    log_pz, nfe = log_likelihood(objective, net, z, cond, **kwargs)
    return log_pz + log_det, nfe


def flow_bits_per_dim(objective, net, x: torch.Tensor, cond=None, data_bins: int | None = None,
                      **kwargs) -> torch.Tensor:
    """-log2 p(x) / D per sample; data_bins as in likelihood.bits_per_dim (+ log2(data_bins / 2) per dim)."""
    log_p, _ = flow_log_likelihood(objective, net, x, cond, **kwargs)
    bpd = -log_p / (x[0].numel() * math.log(2))
    return bpd + math.log2(data_bins / 2) if data_bins is not None else bpd
