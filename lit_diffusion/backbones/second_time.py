"""The optional second time input r (DESIGN §3), one helper for every backbone.

Objectives that condition on an interval or a step size (MeanFlow's r in u(z, r, t), Geng et al. 2025; a
shortcut model's step size d, Frans et al. 2024) give the backbone a second time. A backbone built with
`second_time=True` embeds r like t (same features, an embedder of its own built by t's factory) and adds it
to the conditioning vector. The last layer of that embedder starts at zero, so a fresh model gives the same
output with r absent or present, and a model built without it (every existing checkpoint) is unchanged.
r=None means "no second time" (the embedding is skipped); a model built without it rejects r.

A backbone uses three calls, at the places where it handles t:
    self.r_embedder = second_time_embedder(second_time, make_time_embedder)   # in __init__, right after t's
    init_second_time(self.r_embedder)                                          # in initialize_weights
    emb = add_second_time(emb, r, self.r_embedder, "DiT")                      # in forward, after t's embedding
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lit_diffusion.backbones.contract import batch_time


def second_time_embedder(enabled: bool, like_t: Callable[[], nn.Module]) -> nn.Module | None:
    """r's embedder, built by t's factory `like_t` (so r is embedded like t); None for a model without r."""
    return like_t() if enabled else None


def init_second_time(embedder: nn.Module | None, first_layer_std: float | None = None) -> None:
    """Zero the embedder's last linear layer, so that the model starts as if r were absent; with
    `first_layer_std`, draw its first layer's weight from N(0, std^2) first (as a backbone initialises t's)."""
    if embedder is None:
        return
    linears = [m for m in embedder.modules() if isinstance(m, nn.Linear)]
    if first_layer_std is not None:
        nn.init.normal_(linears[0].weight, std=first_layer_std)
    nn.init.zeros_(linears[-1].weight)
    nn.init.zeros_(linears[-1].bias)


def add_second_time(emb: torch.Tensor, r: torch.Tensor | None, embedder: nn.Module | None, model: str,
                    features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """emb (B, D) + the embedding of r ((B,) or 0-dim), or emb itself when r is None. `features` maps r to the
    embedder's input when the embedder does not take the time itself (the MLP's sin-cos features). A
    ValueError when r is given to a model built without the second time input."""
    if r is None:
        return emb
    if embedder is None:
        raise ValueError(f"{model} was built without a second time input but got r; build it with "
                         f"second_time=True (e.g. for MeanFlow)")
    r = batch_time(r, emb.shape[0])  # (B,)
    return emb + embedder(r if features is None else features(r))  # (B, D)
