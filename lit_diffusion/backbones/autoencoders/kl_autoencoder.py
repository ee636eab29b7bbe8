"""A KL-regularised convolutional autoencoder (the "KL-f" first stage of Rombach et al. 2022, "High-Resolution
Image Synthesis with Latent Diffusion Models", Sec. 3 and App. G), small enough to train on a CPU.

Encoder: conv stem -> per level [residual block, stride-2 conv] -> residual block -> conv to 2 * latent_channels
(the posterior mean and log-variance). Decoder: the mirror image, with nearest-neighbour upsampling + conv.
Each level halves the resolution, so the downsampling factor is 2 ** (len(channels) - 1).
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

LOGVAR_RANGE = (-30.0, 20.0)  # clamp as the LDM posterior does, so exp() never overflows


def weights_digest(module: nn.Module) -> str:
    """sha256 over the state dict (names, shapes, dtypes, bytes in sorted order): the identity of a set of weights,
    whatever file or format they were loaded from."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{list(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with a 1x1 skip when the width changes."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.block = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                   _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


class KLAutoencoder(nn.Module):
    """`encode(x) -> (mean, std)`, `decode(z) -> x`; see the package docstring.

    Args:
        in_channels: image channels (1 grey, 3 RGB).
        latent_channels: channels of the latent z.
        channels: width of each level; len(channels) - 1 stride-2 steps (e.g. (32, 64, 64): factor 4).
    """

    def __init__(self, in_channels: int = 3, latent_channels: int = 4, channels: tuple[int, ...] = (32, 64, 64)):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if in_channels < 1 or latent_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(f"KLAutoencoder: in_channels, latent_channels and channels must be positive, got "
                             f"{in_channels}, {latent_channels}, {channels}")
        self.in_channels, self.latent_channels, self.channels = in_channels, latent_channels, channels
        self.factor = 2 ** (len(channels) - 1)
        enc: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            enc += [ResBlock(c_in, c_in), nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)]
        enc += [ResBlock(channels[-1], channels[-1]), _norm(channels[-1]), nn.SiLU(),
                nn.Conv2d(channels[-1], 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1), ResBlock(channels[-1], channels[-1])]
        for c_in, c_out in zip(channels[::-1][:-1], channels[::-1][1:]):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1), ResBlock(c_out, c_out)]
        dec += [_norm(channels[0]), nn.SiLU(), nn.Conv2d(channels[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def latent_shape(self, image_shape) -> list[int]:
        c, h, w = image_shape
        if c != self.in_channels or h % self.factor or w % self.factor:
            raise ValueError(f"KLAutoencoder: images of shape {list(image_shape)} do not fit an autoencoder of "
                             f"{self.in_channels} channel(s) and downsampling factor {self.factor} (H and W must "
                             f"be multiples of it)")
        return [self.latent_channels, h // self.factor, w // self.factor]

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of q(z | x), each (B, latent_channels, H / f, W / f)."""
        self.latent_shape(x.shape[1:])
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.moments(x)
        return mean, torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[1] != self.latent_channels:
            raise ValueError(f"KLAutoencoder: latents have {z.shape[1]} channels, this autoencoder's have "
                             f"{self.latent_channels}")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(reconstruction, mean, logvar) with z drawn from the posterior (the reparameterisation trick)."""
        mean, logvar = self.moments(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(mean + torch.exp(0.5 * logvar) * eps), mean, logvar


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over latent elements (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


__all__ = ["KLAutoencoder", "kl_to_standard_normal", "weights_digest"]
