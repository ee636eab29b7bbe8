"""The flow contract: an invertible nn.Module with an exact log-determinant (Dinh et al. 2017; Kingma &
Dhariwal 2018). Flows know nothing about diffusion; INDM composes one with a score network."""
from __future__ import annotations

import torch
from torch import nn


class Flow(nn.Module):
    """`forward(x) -> (z, log_det)`: z shaped like x, log_det = log|det dz/dx| per sample (B,).
    `inverse(z) -> x`. `check_input(x)` raises a ValueError naming why the flow cannot take x."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: input must have shape (B, ...), got {tuple(x.shape)}")


class FlowSequence(Flow):
    """Layers applied in order; the log-determinants add (chain rule)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z):
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def per_position(x: torch.Tensor) -> int:
    """Positions sharing one per-channel parameter: H*W for images (B, C, H, W), 1 for vectors (B, C)."""
    return x[0, 0].numel()
