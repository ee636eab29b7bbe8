"""Diffusion Transformer (DiT) with adaLN-Zero conditioning (Peebles & Xie 2023, "Scalable Diffusion
Models with Transformers", Sec. 3).

Patchify -> + fixed 2-D sin-cos positions -> N DiT blocks conditioned on c = embed(t) + embed(cond)
through adaptive LayerNorm whose gates start at zero -> adaLN final layer -> unpatchify.
Inputs of any channel count and (rectangular) resolution divisible by the patch size.

Difference from the paper: the output has `in_channels` channels by default (a prediction shaped
like x). The paper's models also output a learned variance (learn_sigma), i.e. 2 * in_channels;
pass `out_channels=2 * in_channels` to reproduce that configuration and its parameter counts.
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import Mlp
from torch import nn

from lit_diffusion.backbones.attention import SelfAttention
from lit_diffusion.backbones.contract import batch_time, check_cond_allowed, check_image, run_block
from lit_diffusion.backbones.second_time import add_second_time, init_second_time, second_time_embedder
from lit_diffusion.backbones.embeddings import LabelEmbedder, TimestepEmbedder, sincos_pos_embed_2d
from lit_diffusion.backbones.presets import DIT_PRESETS, preset_config


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift, with (B, 1, D) shift/scale broadcast over tokens."""
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero (Peebles & Xie 2023, Fig. 3): gated residual attention and MLP."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0, mlp_norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden_size, num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=mlp_norm_eps)
        gelu_tanh = partial(nn.GELU, approximate="tanh")
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio), act_layer=gelu_tanh)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        modulation = self.adaLN_modulation(c)[:, None].chunk(6, dim=-1)  # x (B, T, D), c (B, D) -> 6 x (B, 1, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = modulation
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))  # (B, T, D)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (B, T, D)
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then a linear map of each token to its patch: (B, T, D) -> (B, T, p*p*C_out)."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=-1)  # each (B, 1, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, T, p*p*C_out)


class DiT(nn.Module):
    """DiT backbone: `forward(x, t, cond=None)`, x (B, C, H, W), t (B,) or 0-dim in [0, 1], cond (B,) int or None.

    Returns (B, out_channels, H, W), out_channels = in_channels unless given. Class index `num_classes`
    is the null label for classifier-free guidance; num_classes=0 builds an unconditional model.
    time_shift: added to time_scale * t before the time features; -1 feeds a published DiT checkpoint its own
    0-based step index n - 1 at the noise level alpha_bar_n, t = n / 1000 (backbones/embeddings.py).
    time_embedding / mlp_norm_eps: the time-feature layout (backbones/embeddings.py) and the epsilon of the
    LayerNorm before each MLP. The defaults are the original DiT's; diffusers' DiTTransformer2DModel computes
    "dit_shift1" features and uses its config's norm_eps (1e-5 by default) there (lit_diffusion/published).
    """

    block_class = DiTBlock

    def __init__(
        self,
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 32,
        patch_size: int = 2,
        hidden_size: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        num_classes: int = 0,
        out_channels: int | None = None,
        activation_checkpointing: bool = False,
        second_time: bool = False,
        time_scale: float = 1000.0,
        time_shift: float = 0.0,
        time_embedding: str = "dit",
        mlp_norm_eps: float = 1e-6,
    ):
        super().__init__()
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if in_channels < 1 or depth < 1 or num_classes < 0 or (out_channels is not None and out_channels < 1):
            raise ValueError(
                f"DiT: in_channels={in_channels}, depth={depth}, out_channels={out_channels} must be positive "
                f"and num_classes={num_classes} non-negative"
            )
        if patch_size < 1 or height % patch_size or width % patch_size:
            raise ValueError(
                f"DiT: input size {height}x{width} is not divisible by patch_size={patch_size}; "
                f"height and width must both be multiples of the patch size"
            )
        if hidden_size % num_heads or hidden_size % 4:
            raise ValueError(f"DiT: hidden_size={hidden_size} must be divisible by num_heads={num_heads} and by 4")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.input_size, self.patch_size, self.num_classes = (height, width), patch_size, num_classes
        self.activation_checkpointing = activation_checkpointing
        self.grid = (height // patch_size, width // patch_size)

        self.patch_embed = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)
        self.register_buffer("pos_embed", torch.zeros(1, self.grid[0] * self.grid[1], hidden_size))  # fixed
        time = dict(time_scale=time_scale, time_shift=time_shift, kind=time_embedding)
        time_embedder = lambda: TimestepEmbedder(hidden_size, **time)  # noqa: E731 (t's, and r's: embedded like t)
        self.t_embedder = time_embedder()
        self.second_time = bool(second_time)  # optional second time input r (backbones/second_time.py)
        self.r_embedder = second_time_embedder(second_time, time_embedder)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size) if num_classes > 0 else None
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio, mlp_norm_eps) for _ in range(depth))
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "DiT":
        """DiT of a named size ("S/2" ... "XL/8", "debug"); keyword arguments override the preset.

        Example: `DiT.from_preset("S/2", in_channels=4, input_size=32, num_classes=1000)`.
        """
        return cls(**{**preset_config(DIT_PRESETS, name, "DiT"), **kwargs})

    def initialize_weights(self) -> None:
        """DiT initialisation (Peebles & Xie 2023, Sec. 3.2; adaLN-Zero): a fresh model outputs exactly zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        pos = sincos_pos_embed_2d(self.pos_embed.shape[-1], *self.grid, device=self.pos_embed.device)
        self.pos_embed.copy_(pos[None])
        # patch embedding initialised like a linear layer on flattened patches
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.patch_embed.weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding.weight, std=0.02)
        for layer in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        init_second_time(self.r_embedder, first_layer_std=0.02)  # first layer like t's, last at zero
        for block in self.blocks:  # adaLN-Zero: every residual branch starts gated shut
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for param in (*self.final_layer.adaLN_modulation[-1].parameters(), *self.final_layer.linear.parameters()):
            nn.init.zeros_(param)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p*p*C_out) -> (B, C_out, H, W), tokens in row-major order of the patch grid."""
        (h, w), p, c = self.grid, self.patch_size, self.out_channels
        x = x.reshape(x.shape[0], h, w, p, p, c)  # (B, h, w, p, p, C)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(x.shape[0], c, h * p, w * p)  # (B, C, H, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                r: torch.Tensor | None = None) -> torch.Tensor:
        check_image(x, self.in_channels, "DiT")
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"DiT was built for input size {self.input_size}, got {tuple(x.shape[2:])}")
        check_cond_allowed(cond, self.num_classes, "DiT")
        B = x.shape[0]
        t = batch_time(t, B)
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, T, D), T = H*W / p^2
        c = self.t_embedder(t)  # (B, D)
        c = add_second_time(c, r, self.r_embedder, "DiT")  # (B, D)
        if self.y_embedder is not None:
            c = c + self.y_embedder(cond, B)  # (B, D)
        for block in self.blocks:
            h = run_block(block, h, c, checkpointing=self.activation_checkpointing)  # (B, T, D)
        h = self.final_layer(h, c)  # (B, T, p*p*C_out)
        return self.unpatchify(h).to(x.dtype)  # (B, C_out, H, W)
