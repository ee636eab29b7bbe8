"""The backbone contract's input checks and the optional activation checkpointing of a block.

Every backbone implements `forward(x, t, cond=None, r=None)`: t is (B,) or 0-dim in [0, 1], cond is an
integer class tensor (B,) or None (None = the null class of a conditional model).

The second time input r (DESIGN §3), for objectives that condition on an interval or a step size
(MeanFlow's r in u(z, r, t), Geng et al. 2025; a shortcut model's step size d, Frans et al. 2024): a
backbone built with `second_time=True` embeds r like t (same sinusoidal features, its own MLP) and adds
it to the conditioning vector. The last layer of that MLP starts at zero, so a fresh model gives the same
output with r absent or present, and a model built without it (every existing checkpoint) is unchanged.
r=None means "no second time" (the embedding is skipped). A model built without it rejects r.
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


def check_second_time(r: torch.Tensor | None, enabled: bool, model: str) -> torch.Tensor | None:
    """r itself; a ValueError when r is given to a model built without the second time input."""
    if r is not None and not enabled:
        raise ValueError(f"{model} was built without a second time input but got r; build it with "
                         f"second_time=True (e.g. for MeanFlow)")
    return r


def zero_init_second_time(last: nn.Linear) -> None:
    """Zero the last layer of a second-time embedder, so that the model starts as if r were absent."""
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
