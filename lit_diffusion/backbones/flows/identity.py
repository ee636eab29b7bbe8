"""The identity as a flow: z = x, log|det| = 0. INDM with it is the linear VP diffusion (Kim et al. 2022)."""
from __future__ import annotations

from lit_diffusion.backbones.flows.base import Flow


class IdentityFlow(Flow):
    def forward(self, x):
        self.check_input(x)
        return x, x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z
