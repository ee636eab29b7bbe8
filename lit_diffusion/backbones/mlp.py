"""A small MLP backbone for low-dimensional (toy) data, with the shared backbone contract."""
from __future__ import annotations

import math

import torch
from torch import nn

from lit_diffusion.backbones.second_time import add_second_time, init_second_time, second_time_embedder


def sinusoidal_time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0,
                              scale: float = 1000.0) -> torch.Tensor:
    """Sin-cos features of scale * t, t in [0, 1] (Vaswani et al. 2017; scale 1000 as in DDPM). (B,) -> (B, dim).
    A smaller scale keeps dF/dt small, as continuous-time consistency models need (Lu & Song 2024, Sec. 4.1)."""
    half = dim // 2
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32  # float64 kept for derivative checks
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = scale * t.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class MLPBlock(nn.Module):
    """Residual block: x + Linear(SiLU(Linear(LayerNorm(x) * (1 + scale) + shift)))."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = nn.Linear(width, 2 * width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.modulation(emb).chunk(2, dim=-1)
        y = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(nn.functional.silu(self.fc1(y)))


class MLP(nn.Module):
    """Time- and class-conditioned residual MLP for data of shape (B, dim).

    `forward(x, t, cond=None, r=None)`: x (B, dim), t (B,) in [0, 1], cond (B,) int or None -> (B, dim).
    Class `num_classes` is the reserved null label used for classifier-free guidance dropout.
    second_time: add the optional second time input r (DESIGN §3; backbones/second_time.py), embedded like t
    and zero-initialised, so the model equals one without it until trained.
    time_scale: t is embedded as sin-cos features of time_scale * t (1000, DDPM); sCM wants a small one.
    """

    block_class = MLPBlock

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 3, num_classes: int = 0,
                 second_time: bool = False, time_scale: float = 1000.0):
        super().__init__()
        self.time_scale = float(time_scale)
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"MLP: dim, width and depth must be positive, got {dim}, {width}, {depth}")
        self.dim, self.width, self.num_classes = dim, width, num_classes
        time_mlp = lambda: nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))  # noqa: E731
        self.time_mlp = time_mlp()
        self.second_time = bool(second_time)
        self.r_mlp = second_time_embedder(second_time, time_mlp)
        self.label_embedding = nn.Embedding(num_classes + 1, width) if num_classes > 0 else None
        self.input = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(MLPBlock(width) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for block in self.blocks:  # start every residual branch at identity modulation
            nn.init.zeros_(block.modulation.weight)
        if self.label_embedding is not None:
            nn.init.normal_(self.label_embedding.weight, std=0.02)
        init_second_time(self.r_mlp)  # the second time starts switched off

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                r: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLP expects x of shape (B, {self.dim}), got {tuple(x.shape)}")
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        features = lambda s: sinusoidal_time_embedding(s, self.width, scale=self.time_scale).to(x.dtype)  # noqa: E731
        emb = self.time_mlp(features(t))  # (B, W)
        emb = add_second_time(emb, r, self.r_mlp, "MLP", features)  # (B, W)
        if self.label_embedding is not None:
            labels = torch.full_like(t, self.num_classes, dtype=torch.long) if cond is None else cond
            emb = emb + self.label_embedding(labels)
        h = self.input(x)  # (B, W)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(self.out_norm(h))  # (B, dim)
