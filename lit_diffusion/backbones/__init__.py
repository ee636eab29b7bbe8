"""Backbones: pure-torch networks with the contract forward(x, t, cond=None) -> Tensor shaped like x."""
from lit_diffusion.backbones.mlp import MLP

__all__ = ["MLP"]
