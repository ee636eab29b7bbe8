"""A RealNVP/Glow flow for vectors (B, D), e.g. 2-D toys (Dinh et al. 2017 with Glow's actnorm and
invertible linear mixing between couplings, Kingma & Dhariwal 2018)."""
from __future__ import annotations

from lit_diffusion.backbones.flows.base import FlowSequence
from lit_diffusion.backbones.flows.multiscale import flow_step


class VectorFlow(FlowSequence):
    """dim: D of the data (>= 2, a coupling splits it in two); layers: flow steps; hidden: MLP width."""

    def __init__(self, dim: int = 2, layers: int = 8, hidden: int = 64):
        if layers < 1 or hidden < 1:
            raise ValueError(f"VectorFlow: layers and hidden must be positive, got {layers}, {hidden}")
        super().__init__(*(flow_step(dim, hidden, image=False) for _ in range(layers)))
        self.dim = dim

    def check_input(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"VectorFlow expects vectors (B, {self.dim}), got {tuple(x.shape)}")

    def forward(self, x):
        self.check_input(x)
        return super().forward(x)

    def inverse(self, z):
        self.check_input(z)
        return super().inverse(z)
