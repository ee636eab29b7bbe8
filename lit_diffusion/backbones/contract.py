"""The backbone contract's input checks and the optional activation checkpointing of a block.

Every backbone implements `forward(x, t, cond=None, r=None)`: t is (B,) or 0-dim in [0, 1], cond is an
integer class tensor (B,) or None (None = the null class of a conditional model).

The optional second time input r (DESIGN §3) has its own helper: backbones/second_time.py.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def batch_time(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Return t as a (batch,) tensor: a 0-dim t is broadcast, a (batch,) t is kept, anything else is an error."""
    if t.ndim == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape ({batch},) or be 0-dim, got {tuple(t.shape)}")
    return t


def check_image(x: torch.Tensor, in_channels: int, model: str) -> None:
    """x must be (B, in_channels, H, W)."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{model} expects x of shape (B, {in_channels}, H, W), got {tuple(x.shape)}")


def check_cond_allowed(cond: torch.Tensor | None, num_classes: int, model: str) -> None:
    """An unconditional model (num_classes=0) must not be given labels: fail instead of ignoring them."""
    if num_classes == 0 and cond is not None:
        raise ValueError(f"{model} was built with num_classes=0 (unconditional) but got cond; pass cond=None")


def run_block(block: nn.Module, *args: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """block(*args), recomputed in the backward pass when checkpointing (non-reentrant torch.utils.checkpoint)."""
    if checkpointing and torch.is_grad_enabled():
        return checkpoint(block, *args, use_reentrant=False)
    return block(*args)

