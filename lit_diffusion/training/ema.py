"""Exponential moving averages of model weights: the classic constant decay, and EDM2's power-function
profile (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models", sec. 3.1):
beta_t = (1 - 1/t)^(gamma + 1) at update t = 1, 2, ..., whose width is set by sigma_rel through
sigma_rel = sqrt(gamma + 1) / ((gamma + 2) sqrt(gamma + 3)) (their eq. 3)."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from lit_diffusion.distributed.shards import local_shard as _local  # the rank's shard of a parameter
from lit_diffusion.training.ema_bank import DecayProfile, EMABank


def gamma_from_sigma_rel(sigma_rel: float) -> float:
    """Invert sigma_rel(gamma) on gamma > 0, where it decreases from 1/sqrt(12) to 0, by bisection."""
    if not 0.0 < sigma_rel < 1.0 / math.sqrt(12.0):
        raise ValueError(f"EMA: sigma_rel must lie in (0, 0.2887), got {sigma_rel}")

    def sigma(g):
        return math.sqrt(g + 1) / ((g + 2) * math.sqrt(g + 3))

    lo, hi = 1e-9, 1e6
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if sigma(mid) > sigma_rel else (lo, mid)
    return math.sqrt(lo * hi)


class EMA(nn.Module):
    """A shadow copy of a model, updated after each optimiser step.

    Args:
        model: the trained model (its parameters are averaged, its buffers copied).
        decay: classic constant decay beta (used when sigma_rel is None).
        sigma_rel: EDM2 power-function EMA width relative to training length (e.g. 0.05 or 0.10).
    As a submodule of the LightningModule it follows the model's device and is saved in checkpoints.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, sigma_rel: float | None = None):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must lie in [0, 1), got {decay}")
        self.decay, self.sigma_rel = float(decay), sigma_rel
        self.gamma = None if sigma_rel is None else gamma_from_sigma_rel(sigma_rel)
        self.bank = EMABank([DecayProfile(self.gamma, self.decay)])  # the averaging step shared with post-hoc EMA
        self.shadow = copy.deepcopy(model).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._count: int | None = None  # host mirror of num_updates: beta needs it every step, a read would sync

    def beta(self, t: int) -> float:
        """Decay at update t (1-based)."""
        return self.bank.profiles[0].beta(t)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._count = None  # re-read num_updates once, at the next update

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step, without a host sync. Under FSDP2 the shadow is sharded exactly like the model
        (lit_diffusion.distributed.fsdp2), so each rank averages its own shards: no gather, no communication.
        Under DeepSpeed ZeRO-3 the shadow is partitioned like the model (DeepSpeed partitions every parameter of
        the module it wraps, frozen ones too, each into the same slices as a trained parameter of its shape), so
        the same holds: each rank averages the slice it holds, and DeepSpeed saves and restores those slices as
        its frozen-parameter fragments (distributed/deepspeed_zero.py)."""
        if self._count is None:
            self._count = int(self.num_updates)  # once per fit (or after a load), not per step
        self._count += 1
        self.num_updates.fill_(self._count)
        pairs = [(_local(ema_p), _local(p).detach()) for ema_p, p in zip(self.shadow.parameters(), model.parameters())]
        self.bank.update([[ema_p for ema_p, _ in pairs]], [p for _, p in pairs], self._count)
        for ema_b, b in zip(self.shadow.buffers(), model.buffers()):
            ema_b.copy_(b)

    def forward(self, *args, **kwargs):
        return self.shadow(*args, **kwargs)
