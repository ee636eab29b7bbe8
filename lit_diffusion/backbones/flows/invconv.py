"""Invertible 1x1 convolution (Kingma & Dhariwal 2018, Glow, sec. 3.2): z = W x at every position,
log|det| = (positions) * log|det W|. W starts as a random rotation. Works on (B, C) and (B, C, H, W)."""
from __future__ import annotations

import torch
from torch import nn

from lit_diffusion.backbones.flows.base import Flow, per_position


class InvConv1x1(Flow):
    def __init__(self, channels: int):
        super().__init__()
        if channels < 1:
            raise ValueError(f"InvConv1x1: channels must be positive, got {channels}")
        self.channels = channels
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(q)

    def _mix(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ValueError(f"InvConv1x1: expected (B, {self.channels}, ...), got shape {tuple(x.shape)}")
        return torch.einsum("ij,bj...->bi...", w.to(x.dtype), x)

    def forward(self, x):
        z = self._mix(self.weight, x)
        log_det = torch.linalg.slogdet(self.weight.double())[1].to(x.dtype) * per_position(x)
        return z, log_det.expand(x.shape[0])

    def inverse(self, z):
        return self._mix(torch.linalg.inv(self.weight.double()), z)
