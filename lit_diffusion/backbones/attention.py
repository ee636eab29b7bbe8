"""Multi-head self-attention over tokens through torch.nn.functional.scaled_dot_product_attention.

Shared by the DiT blocks (Peebles & Xie 2023) and the U-Net attention blocks (Ho et al. 2020;
Dhariwal & Nichol 2021). SDPA picks a fused kernel (flash / memory-efficient / cuDNN) where it can.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SelfAttention(nn.Module):
    """softmax(q k^T / sqrt(d)) v with a fused qkv projection and an output projection; (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(f"attention width {dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)  # (B, N, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, d)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d)
        return self.proj(y.transpose(1, 2).reshape(B, N, C))  # (B, N, C)
