"""Embedders shared by the backbones: time, class label (with a null class), 2-D sin-cos positions.

The time embedder follows DiT (Peebles & Xie 2023, Sec. 3.2) and DDPM (Ho et al. 2020, App. B):
sinusoidal features of 1000 * t followed by a two-layer MLP. Two feature layouts exist in published code:
"dit" (cos first, frequencies exp(-ln(1e4) i / half); DiT's models.py) and "ho" (sin first, frequencies
exp(-ln(1e4) i / (half - 1)); Ho et al.'s `get_timestep_embedding`, diffusers' UNet2DModel with
flip_sin_to_cos=False, freq_shift=1). `time_shift` adds a constant to the embedded time: published discrete
models are fed the 0-based index n - 1 for the noise level alpha_bar_n, which is 1000 * t - 1 at t = n / 1000.
A third layout, "dit_shift1" (cos first, the "ho" frequencies), is what diffusers' DiTTransformer2DModel computes. Label embeddings reserve index
`num_classes` as the null class used for classifier-free guidance (Ho & Salimans 2022).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lit_diffusion.backbones.mlp import sinusoidal_time_embedding

TIME_EMBEDDINGS = ("dit", "ho", "dit_shift1")  # dit_shift1: diffusers' DiT (cos first, frequencies as "ho")

__all__ = [
    "TIME_EMBEDDINGS",
    "LabelEmbedder",
    "TimestepEmbedder",
    "sincos_pos_embed_2d",
    "ho_time_embedding",
    "sinusoidal_time_embedding",
]


def ho_time_embedding(steps: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Ho et al. 2020's sinusoidal features of an (already scaled) time, (B,) -> (B, dim):
    [sin(steps * w_i), cos(steps * w_i)], w_i = max_period^(-i / (half - 1)), zero-padded if dim is odd."""
    half = dim // 2
    if half < 2:
        raise ValueError(f"the 'ho' time embedding needs frequency_dim >= 4, got {dim}")
    dtype = torch.float64 if steps.dtype == torch.float64 else torch.float32
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=steps.device, dtype=dtype) / (half - 1))
    args = steps.to(dtype)[:, None] * freqs[None]  # (B, half)
    return torch.nn.functional.pad(torch.cat([torch.sin(args), torch.cos(args)], dim=-1), (0, dim % 2))


class TimestepEmbedder(nn.Module):
    """t in [0, 1] -> sinusoidal features of time_scale * t + time_shift (frequency_dim) -> Linear, SiLU, Linear
    -> (B, dim). kind "dit" (default), "ho" or "dit_shift1" selects the feature layout (module docstring)."""

    def __init__(self, dim: int, frequency_dim: int = 256, time_scale: float = 1000.0, time_shift: float = 0.0,
                 kind: str = "dit"):
        super().__init__()
        if kind not in TIME_EMBEDDINGS:
            raise ValueError(f"unknown time embedding {kind!r}; choose one of {list(TIME_EMBEDDINGS)}")
        self.frequency_dim, self.time_scale, self.time_shift, self.kind = (
            frequency_dim, float(time_scale), float(time_shift), kind)
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "ho":
            freq = ho_time_embedding(self.time_scale * t + self.time_shift, self.frequency_dim)  # (B, F)
        elif self.kind == "dit_shift1":  # [cos, sin] halves of the "ho" features (diffusers Timesteps(flip_sin_to_cos=True, downscale_freq_shift=1))
            sin_cos = ho_time_embedding(self.time_scale * t + self.time_shift, 2 * (self.frequency_dim // 2))
            half = self.frequency_dim // 2
            freq = torch.nn.functional.pad(torch.cat([sin_cos[:, half:], sin_cos[:, :half]], dim=-1),
                                           (0, self.frequency_dim % 2))
        elif self.time_shift:
            freq = sinusoidal_time_embedding(self.time_scale * t + self.time_shift, self.frequency_dim, scale=1.0)
        else:  # (B, F); unchanged arithmetic for the existing models
            freq = sinusoidal_time_embedding(t, self.frequency_dim, scale=self.time_scale)
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
