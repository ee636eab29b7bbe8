"""Activation normalisation (Kingma & Dhariwal 2018, Glow, sec. 3.1): a per-channel affine map
z = x * exp(log_scale) + bias, log|det| = (positions) * sum(log_scale). Initialised at the identity
(no data-dependent initialisation, so EMA copies and resumed runs need no extra state)."""
from __future__ import annotations

import torch
from torch import nn

from lit_diffusion.backbones.flows.base import Flow, per_position


class ActNorm(Flow):
    def __init__(self, channels: int):
        super().__init__()
        if channels < 1:
            raise ValueError(f"ActNorm: channels must be positive, got {channels}")
        self.channels = channels
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p.view((1, -1) + (1,) * (x.ndim - 2))

    def _check(self, x):
        self.check_input(x)
        if x.shape[1] != self.channels:
            raise ValueError(f"ActNorm: expected {self.channels} channels, got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check(x)
        z = x * torch.exp(self._view(self.log_scale, x)) + self._view(self.bias, x)
        return z, (self.log_scale.sum() * per_position(x)).expand(x.shape[0])

    def inverse(self, z):
        self._check(z)
        return (z - self._view(self.bias, z)) * torch.exp(-self._view(self.log_scale, z))
