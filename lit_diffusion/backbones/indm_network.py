"""INDMNetwork: the flow g and the score network of INDM (Kim et al. 2022) in one nn.Module, so that the
training module's optimiser and EMA cover both and they are trained jointly.

`forward(z, t, cond)` is the score network on the latent z (the backbone contract), so every shared
sampler and the likelihood code run on z unchanged; `flow(x) -> (z, log_det)` and `flow.inverse(z)`
map between data and latent. The INDM objective uses both.
"""
from __future__ import annotations

import torch
from torch import nn

from lit_diffusion.backbones.flows.base import Flow


class INDMNetwork(nn.Module):
    """flow: an invertible Flow (IdentityFlow gives the linear diffusion); score: any backbone."""

    def __init__(self, flow: nn.Module, score: nn.Module):
        super().__init__()
        if not isinstance(flow, Flow):
            raise TypeError(f"INDMNetwork: flow must be a lit_diffusion.backbones.flows.Flow, got {type(flow).__name__}")
        self.flow, self.score = flow, score
        if hasattr(score, "block_class"):  # FSDP wrapping / activation checkpointing from outside
            self.block_class = score.block_class

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(z, t, cond)  # (B, ...) like z
