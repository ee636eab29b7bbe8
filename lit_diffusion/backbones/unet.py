"""U-Net of the DDPM / ADM / DDPM++ family.

Ho et al. 2020 (DDPM, App. B): a PixelCNN++-style U-Net with wide residual blocks, GroupNorm,
self-attention at chosen resolutions, dropout, and a sinusoidal time embedding added inside
every residual block. Dhariwal & Nichol 2021 (ADM, Sec. 3) and Song et al. 2021 (DDPM++)
condition by scale-shift of the normalised activations instead ("adaptive GroupNorm") and add
class labels to the time embedding. `scale_shift` selects between the two.

Level i of `channel_mult` runs at resolution H / 2^i; `attention_levels` names the levels
with self-attention (level 1 = 16x16 for 32x32 inputs). Skip connections carry the output of
the input convolution and of every block / downsampling of the encoder to the decoder.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lit_diffusion.backbones.attention import SelfAttention
from lit_diffusion.backbones.contract import batch_time, check_cond_allowed, check_image, run_block
from lit_diffusion.backbones.second_time import add_second_time, init_second_time, second_time_embedder
from lit_diffusion.backbones.embeddings import LabelEmbedder, TimestepEmbedder
from lit_diffusion.backbones.presets import UNET_PRESETS, preset_config


class AttentionBlock(nn.Module):
    """x + proj(attention(GroupNorm(x))) over the H*W positions; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, num_heads: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.attn = SelfAttention(channels, num_heads, qkv_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        return x + self.attn(tokens).transpose(1, 2).reshape(B, C, H, W)  # (B, C, H, W)


class UNetBlock(nn.Module):
    """Residual block conditioned on the embedding, optionally followed by self-attention (the repeated unit).

    h = conv1(SiLU(GN(x))); then either h = conv2(drop(SiLU(GN(h) * (1 + scale) + shift)))   [scale-shift, ADM]
    or h = conv2(drop(SiLU(GN(h + proj(emb)))))   [additive, DDPM]; out = skip(x) + h.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        *,
        attention: bool,
        num_heads: int,
        dropout: float,
        norm_groups: int,
        scale_shift: bool,
    ):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, (2 if scale_shift else 1) * out_channels))
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.attention = AttentionBlock(out_channels, num_heads, norm_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        e = self.emb_proj(emb)[:, :, None, None]  # (B, C_out or 2*C_out, 1, 1)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))  # (B, C_out, H, W)
        h = self.skip(x) + h
        return h if self.attention is None else self.attention(h)


DOWNSAMPLE_PADDINGS = ("same", "right_bottom")


class Downsample(nn.Module):
    """3x3 convolution with stride 2; (B, C, H, W) -> (B, C, H/2, W/2).

    padding "same": one zero pixel on every side. "right_bottom": one zero column on the right and one row at
    the bottom only, as TensorFlow's "SAME" stride-2 convolution pads even inputs (Ho et al. 2020's code;
    diffusers' downsample_padding=0); the two sample the input on grids shifted by one pixel."""

    def __init__(self, channels: int, padding: str = "same"):
        super().__init__()
        self.right_bottom = padding == "right_bottom"
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if self.right_bottom else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.right_bottom:
            x = F.pad(x, (0, 1, 0, 1))  # (B, C, H + 1, W + 1)
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x then a 3x3 convolution; (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """U-Net backbone: `forward(x, t, cond=None)`, x (B, C, H, W), t (B,) or 0-dim in [0, 1], cond (B,) int or None.

    H and W must be divisible by 2^(len(channel_mult) - 1). Returns (B, out_channels, H, W). Class
    index `num_classes` is the null label for classifier-free guidance; num_classes=0 is unconditional.

    out_channels: defaults to in_channels; 2 * in_channels for a learned variance (objectives/learned_variance.py).
    downsample_padding: "same" (pad 1 on every side) or "right_bottom" (Ho et al.'s; see Downsample).
    time_embedding: "dit" (cos first, exp(-ln 1e4 i / half)) or "ho" (sin first, exp(-ln 1e4 i / (half - 1))).
    time_shift: added to time_scale * t before the features; -1 feeds a published discrete model (Ho et al.,
        diffusers, DiT) its own 0-based index n - 1 at the noise level alpha_bar_n, t = n / 1000.
    """

    block_class = UNetBlock

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        channels: int = 128,
        channel_mult: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: tuple[int, ...] = (1,),
        num_heads: int = 1,
        dropout: float = 0.1,
        norm_groups: int = 32,
        scale_shift: bool = True,
        num_classes: int = 0,
        activation_checkpointing: bool = False,
        second_time: bool = False,
        time_scale: float = 1000.0,
        downsample_padding: str = "same",
        time_embedding: str = "dit",
        time_shift: float = 0.0,
    ):
        super().__init__()
        channel_mult, attention_levels = tuple(channel_mult), tuple(attention_levels)
        if in_channels < 1 or channels < 1 or num_res_blocks < 1 or not channel_mult or num_classes < 0:
            raise ValueError(
                f"UNet: in_channels={in_channels}, channels={channels}, num_res_blocks={num_res_blocks} must be "
                f"positive, channel_mult={channel_mult} non-empty and num_classes={num_classes} non-negative"
            )
        if downsample_padding not in DOWNSAMPLE_PADDINGS:
            raise ValueError(f"UNet: downsample_padding must be one of {list(DOWNSAMPLE_PADDINGS)}, "
                             f"got {downsample_padding!r}")
        if out_channels is not None and out_channels < 1:
            raise ValueError(f"UNet: out_channels must be positive (or None for in_channels), got {out_channels}")
        bad_levels = [lvl for lvl in attention_levels if not 0 <= lvl < len(channel_mult)]
        if bad_levels:
            raise ValueError(f"UNet: attention_levels {bad_levels} not in the levels {list(range(len(channel_mult)))}")
        widths = sorted({channels * m for m in channel_mult})
        if any(w % norm_groups for w in widths):
            raise ValueError(f"UNet: every width {widths} must be divisible by norm_groups={norm_groups}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.num_classes, self.activation_checkpointing = num_classes, activation_checkpointing
        self.downsample_factor = 2 ** (len(channel_mult) - 1)
        emb_dim = 4 * channels
        block = dict(
            emb_dim=emb_dim, num_heads=num_heads, dropout=dropout, norm_groups=norm_groups, scale_shift=scale_shift
        )

        time = dict(frequency_dim=channels, time_scale=time_scale, time_shift=time_shift, kind=time_embedding)
        time_embedder = lambda: TimestepEmbedder(emb_dim, **time)  # noqa: E731 (t's, and r's: embedded like t)
        self.t_embedder = time_embedder()
        self.second_time = bool(second_time)  # optional second time input r (backbones/second_time.py)
        self.r_embedder = second_time_embedder(second_time, time_embedder)
        self.y_embedder = LabelEmbedder(num_classes, emb_dim) if num_classes > 0 else None
        self.input_conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()  # UNetBlock / Downsample, each output is a skip connection
        skips, width = [channels], channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(UNetBlock(width, channels * mult, attention=level in attention_levels, **block))
                width = channels * mult
                skips.append(width)
            if level < len(channel_mult) - 1:
                self.down.append(Downsample(width, downsample_padding))
                skips.append(width)
        self.mid = nn.ModuleList(
            [UNetBlock(width, width, attention=True, **block), UNetBlock(width, width, attention=False, **block)]
        )
        self.up = nn.ModuleList()  # UNetBlock (consumes one skip) / Upsample
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                in_width = width + skips.pop()
                self.up.append(UNetBlock(in_width, channels * mult, attention=level in attention_levels, **block))
                width = channels * mult
            if level > 0:
                self.up.append(Upsample(width))
        self.out_norm = nn.GroupNorm(norm_groups, width, eps=1e-6)
        self.out_conv = nn.Conv2d(width, self.out_channels, 3, padding=1)
        self.initialize_weights()

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "UNet":
        """U-Net of a named size ("ddpm-cifar10", "small", "debug"), e.g. `UNet.from_preset("small", in_channels=1)`."""
        return cls(**{**preset_config(UNET_PRESETS, name, "UNet"), **kwargs})

    def initialize_weights(self) -> None:
        """Xavier-uniform convolutions and linears (DDPM's fan-avg init), zero biases; the last layer of every
        residual branch and the output convolution start at zero (DDPM init_scale=0, ADM zero_module),
        so a fresh U-Net outputs exactly zero and every block starts as its skip path."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, UNetBlock):
                nn.init.zeros_(module.conv2.weight)
            elif isinstance(module, AttentionBlock):
                nn.init.zeros_(module.attn.proj.weight)
        nn.init.zeros_(self.out_conv.weight)
        init_second_time(self.r_embedder)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                r: torch.Tensor | None = None) -> torch.Tensor:
        check_image(x, self.in_channels, "UNet")
        if x.shape[2] % self.downsample_factor or x.shape[3] % self.downsample_factor:
            raise ValueError(
                f"UNet downsamples by {self.downsample_factor}, so height and width must be multiples of "
                f"{self.downsample_factor}; got {x.shape[2]}x{x.shape[3]}"
            )
        check_cond_allowed(cond, self.num_classes, "UNet")
        B = x.shape[0]
        emb = self.t_embedder(batch_time(t, B))  # (B, 4C)
        emb = add_second_time(emb, r, self.r_embedder, "UNet")  # (B, 4C)
        if self.y_embedder is not None:
            emb = emb + self.y_embedder(cond, B)  # (B, 4C)
        h = self.input_conv(x)  # (B, C, H, W)
        skips = [h]
        for module in self.down:
            h = self._run(module, h, emb)  # (B, C_level, H / 2^level, W / 2^level)
            skips.append(h)
        for module in self.mid:
            h = self._run(module, h, emb)  # (B, C_last, H / f, W / f)
        for module in self.up:
            if isinstance(module, UNetBlock):
                h = torch.cat([h, skips.pop()], dim=1)  # (B, C_h + C_skip, h, w)
            h = self._run(module, h, emb)
        return self.out_conv(F.silu(self.out_norm(h))).to(x.dtype)  # (B, C_out, H, W)

    def _run(self, module: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if isinstance(module, UNetBlock):
            return run_block(module, h, emb, checkpointing=self.activation_checkpointing)
        return module(h)
