"""One bank of exponential moving averages, serving the live EMA (ema.py) and the post-hoc snapshots
(posthoc_ema.py): the decay profiles and the one averaging step both use.

A profile gives beta_t at update t = 1, 2, ...: a constant decay, or EDM2's power function
beta_t = (1 - 1/t)^(gamma + 1) (Karras et al. 2024, eq. 2; gamma from sigma_rel by their eq. 3, ema.py).
One update moves every average towards the current values,

    average <- beta_t * average + (1 - beta_t) * value      (torch._foreach_lerp_, in the average's dtype)

with one fused kernel launch per dtype/device group instead of one per tensor. The live EMA is a bank of one
profile whose averages are the shadow model's (rank-local) parameters; the post-hoc callback a bank of one
power profile per sigma_rel whose averages are float32 copies of the backbone's parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class DecayProfile:
    """beta_t of one EMA: the power function of `gamma` (EDM2), or the constant `decay` when gamma is None."""

    gamma: float | None = None
    decay: float = 0.9999

    def beta(self, t: int) -> float:
        """Decay at update t (1-based)."""
        if self.gamma is None:
            return self.decay
        return (1.0 - 1.0 / t) ** (self.gamma + 1.0)


@torch.no_grad()
def lerp_average(averages: Sequence[torch.Tensor], values: Sequence[torch.Tensor], beta: float) -> None:
    """averages <- beta * averages + (1 - beta) * values, in place; a value of another dtype is cast to its
    average's first (a bf16 model, float32 averages)."""
    averages = list(averages)
    values = [v if v.dtype == a.dtype else v.to(a.dtype) for a, v in zip(averages, values, strict=True)]
    if averages:
        torch._foreach_lerp_(averages, values, 1.0 - beta)


class EMABank:
    """EMAs of the same tensors under several profiles, updated together once per optimiser step. The bank
    keeps no tensors and no count: its owner stores the averages and t where its checkpoints expect them."""

    def __init__(self, profiles: Sequence[DecayProfile]):
        self.profiles = tuple(profiles)
        if not self.profiles:
            raise ValueError("EMABank: give at least one decay profile")

    def update(self, averages: Sequence[Sequence[torch.Tensor]], values: Sequence[torch.Tensor], t: int) -> None:
        """Update t (1-based): `averages[i]` (one tensor per value) follows `values` under profile i."""
        if len(averages) != len(self.profiles):
            raise ValueError(f"EMABank: {len(averages)} lists of averages for {len(self.profiles)} profiles")
        if t < 1:
            raise ValueError(f"EMABank: updates count from 1, got t={t}")
        for profile, profile_averages in zip(self.profiles, averages):
            lerp_average(profile_averages, values, profile.beta(t))
