"""A multiscale Glow/RealNVP image flow (Dinh et al. 2017, sec. 3.6; Kingma & Dhariwal 2018, Fig. 2) whose
output z has the input's shape, so that a diffusion and its score network run on z as on images.

Level l: squeeze (C, H, W) -> (4C, H/2, W/2); `steps` x [ActNorm, InvConv1x1, AffineCoupling]; then
(all levels but the last) half of the channels is factored out and the other half goes on. The
factored halves are put back and unsqueezed in reverse order, so z = g(x) has x's shape exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lit_diffusion.backbones.flows.actnorm import ActNorm
from lit_diffusion.backbones.flows.base import Flow, FlowSequence
from lit_diffusion.backbones.flows.coupling import AffineCoupling
from lit_diffusion.backbones.flows.invconv import InvConv1x1

#: named sizes; "debug" for CPU tests, "small" for MNIST, "cifar10" for 32x32 RGB on a GPU
FLOW_PRESETS = {
    "debug": dict(levels=1, steps=2, hidden=16),
    "small": dict(levels=2, steps=4, hidden=64),
    "cifar10": dict(levels=3, steps=8, hidden=256),
}


def flow_step(channels: int, hidden: int, image: bool = True) -> FlowSequence:
    """One Glow step: actnorm, invertible 1x1 convolution, affine coupling."""
    return FlowSequence(ActNorm(channels), InvConv1x1(channels), AffineCoupling(channels, hidden, image=image))


class MultiscaleFlow(Flow):
    """in_channels: C of the images; levels: squeezes (H and W must be divisible by 2**levels);
    steps: flow steps per level; hidden: width of the coupling networks."""

    def __init__(self, in_channels: int = 3, levels: int = 2, steps: int = 4, hidden: int = 64):
        super().__init__()
        if in_channels < 1 or levels < 0 or steps < 1 or hidden < 1:
            raise ValueError(f"MultiscaleFlow: need in_channels, steps, hidden >= 1 and levels >= 0, got "
                             f"{in_channels}, {levels}, {steps}, {hidden}")
        self.in_channels, self.levels = in_channels, levels
        self.blocks = nn.ModuleList()
        self.split_sizes: list[int] = []  # channels factored out after each level (0 for the last)
        c = in_channels
        for level in range(max(levels, 1)):
            c = 4 * c if levels > 0 else c  # levels = 0: no squeeze (couplings on the raw channels)
            self.blocks.append(FlowSequence(*(flow_step(c, hidden) for _ in range(steps))))
            last = level == max(levels, 1) - 1
            self.split_sizes.append(0 if last else c // 2)
            c = c - self.split_sizes[-1]

    @classmethod
    def from_preset(cls, name: str, in_channels: int = 3) -> "MultiscaleFlow":
        if name not in FLOW_PRESETS:
            raise ValueError(f"unknown flow preset {name!r}; known: {sorted(FLOW_PRESETS)}")
        return cls(in_channels=in_channels, **FLOW_PRESETS[name])

    def check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MultiscaleFlow expects images (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        k = 2 ** self.levels
        if x.shape[2] % k or x.shape[3] % k:
            raise ValueError(f"MultiscaleFlow is not invertible at image size {tuple(x.shape[2:])}: its {self.levels} "
                             f"squeeze level(s) need H and W divisible by {k}; use fewer levels or pad the data")

    def _squeeze(self, x):
        return F.pixel_unshuffle(x, 2) if self.levels > 0 else x

    def _unsqueeze(self, x):
        return F.pixel_shuffle(x, 2) if self.levels > 0 else x

    def forward(self, x):
        self.check_input(x)
        log_det = x.new_zeros(x.shape[0])
        factored = []
        h = x
        for block, split in zip(self.blocks, self.split_sizes):
            h, ld = block(self._squeeze(h))  # (B, 4C, H/2, W/2)
            log_det = log_det + ld
            if split:
                factored.append(h[:, :split])
                h = h[:, split:]
        for split in reversed(self.split_sizes):  # put the halves back: z has x's shape
            if split:
                h = torch.cat([factored.pop(), h], dim=1)
            h = self._unsqueeze(h)
        return h, log_det

    def inverse(self, z):
        self.check_input(z)
        factored = []
        h = z
        for split in self.split_sizes:  # undo the reassembly: squeeze and take the factored halves off
            h = self._squeeze(h)
            if split:
                factored.append(h[:, :split])
                h = h[:, split:]
        for block, split in zip(reversed(self.blocks), reversed(self.split_sizes)):
            if split:
                h = torch.cat([factored.pop(), h], dim=1)
            h = self._unsqueeze(block.inverse(h))
        return h
