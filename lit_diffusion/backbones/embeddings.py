"""Embedders shared by the backbones: time, class label (with a null class), 2-D sin-cos positions.

The time embedder follows DiT (Peebles & Xie 2023, Sec. 3.2) and DDPM (Ho et al. 2020, App. B):
sinusoidal features of 1000 * t followed by a two-layer MLP. Label embeddings reserve index
`num_classes` as the null class used for classifier-free guidance (Ho & Salimans 2022).
"""
from __future__ import annotations

import torch
from torch import nn

from lit_diffusion.backbones.mlp import sinusoidal_time_embedding

__all__ = [
    "LabelEmbedder",
    "TimestepEmbedder",
    "sincos_pos_embed_2d",
    "sinusoidal_time_embedding",
]


class TimestepEmbedder(nn.Module):
    """t in [0, 1] -> sinusoidal features of time_scale * t (1000; frequency_dim) -> Linear, SiLU, Linear -> (B, dim)."""

    def __init__(self, dim: int, frequency_dim: int = 256, time_scale: float = 1000.0):
        super().__init__()
        self.frequency_dim, self.time_scale = frequency_dim, float(time_scale)
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freq = sinusoidal_time_embedding(t, self.frequency_dim, scale=self.time_scale)  # (B, F)
        return self.mlp(freq.to(self.mlp[0].weight.dtype))  # (B, dim)


class LabelEmbedder(nn.Module):
    """Class label (B,) int -> (B, dim). Row `num_classes` is the null class; cond=None means all null."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"LabelEmbedder needs num_classes >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes + 1, dim)

    def forward(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        if cond is None:
            cond = torch.full((batch,), self.num_classes, dtype=torch.long, device=self.embedding.weight.device)
        elif cond.shape != (batch,) or cond.dtype.is_floating_point or cond.dtype == torch.bool:
            raise ValueError(
                f"cond must be an integer class tensor of shape ({batch},) with values in "
                f"[0, {self.num_classes}] ({self.num_classes} = null class), got {cond.dtype} {tuple(cond.shape)}"
            )
        return self.embedding(cond)  # (B, dim)


def sincos_pos_embed_2d(dim: int, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (Vaswani et al. 2017; MAE / DiT style), (height * width, dim).

    The first half of the channels encodes the column, the second half the row; each half is
    [sin(pos * omega), cos(pos * omega)] with omega_i = 10000^(-i / (dim / 4)). Tokens are row-major.
    """
    if dim % 4 != 0:
        raise ValueError(f"2-D sin-cos position embedding needs dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10_000.0 ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)  # (dim/4,)
    rows = torch.arange(height, dtype=torch.float64, device=device).repeat_interleave(width)  # (h*w,)
    cols = torch.arange(width, dtype=torch.float64, device=device).repeat(height)  # (h*w,)

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] * omega[None]  # (h*w, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (h*w, dim/2)

    return torch.cat([encode(cols), encode(rows)], dim=1).float()  # (h*w, dim)
