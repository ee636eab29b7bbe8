"""Affine coupling (Dinh et al. 2017, RealNVP, eqs. 4-6; Glow's version, Kingma & Dhariwal 2018, Table 1):
split x into halves (x_a, x_b) along channels; z_a = x_a, z_b = x_b * exp(log_s(x_a)) + t(x_a);
log|det| = sum log_s. log_s = tanh(.) keeps each layer's scale in [1/e, e]; the last layer of the
conditioner is zero-initialised so that the coupling starts as the identity."""
from __future__ import annotations

import torch
from torch import nn

from lit_diffusion.backbones.flows.base import Flow


def _conditioner(c_in: int, c_out: int, hidden: int, image: bool) -> nn.Sequential:
    if image:
        layers = [nn.Conv2d(c_in, hidden, 3, padding=1), nn.SiLU(), nn.Conv2d(hidden, hidden, 1), nn.SiLU(),
                  nn.Conv2d(hidden, 2 * c_out, 3, padding=1)]
    else:
        layers = [nn.Linear(c_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                  nn.Linear(hidden, 2 * c_out)]
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class AffineCoupling(Flow):
    """channels: C of the input (B, C) or (B, C, H, W); hidden: conditioner width; image: conv or MLP
    conditioner; swap: transform the first half instead of the second."""

    def __init__(self, channels: int, hidden: int = 64, image: bool = True, swap: bool = False):
        super().__init__()
        if channels < 2:
            raise ValueError(f"AffineCoupling cannot split {channels} channel(s) into two halves: it needs at "
                             "least 2 (squeeze images first, or use data of dimension >= 2)")
        self.channels, self.swap, self.image = channels, swap, image
        self.c_a = channels // 2 if not swap else channels - channels // 2
        self.net = _conditioner(self.c_a, channels - self.c_a, hidden, image)

    def _split(self, x):
        want = 4 if self.image else 2
        if x.ndim != want or x.shape[1] != self.channels:
            shape = f"(B, {self.channels}, H, W)" if self.image else f"(B, {self.channels})"
            raise ValueError(f"AffineCoupling expects {shape}, got {tuple(x.shape)}")
        if self.swap:
            b, a = x[:, : self.channels - self.c_a], x[:, self.channels - self.c_a:]
        else:
            a, b = x[:, : self.c_a], x[:, self.c_a:]
        return a, b

    def _join(self, a, b):
        return torch.cat([b, a] if self.swap else [a, b], dim=1)

    def _scale_shift(self, a):
        raw_s, shift = self.net(a).chunk(2, dim=1)
        return torch.tanh(raw_s), shift

    def forward(self, x):
        a, b = self._split(x)
        log_s, shift = self._scale_shift(a)
        return self._join(a, b * torch.exp(log_s) + shift), log_s.flatten(1).sum(1)

    def inverse(self, z):
        a, b = self._split(z)
        log_s, shift = self._scale_shift(a)
        return self._join(a, (b - shift) * torch.exp(-log_s))
