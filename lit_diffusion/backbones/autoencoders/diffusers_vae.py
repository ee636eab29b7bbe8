"""diffusers' AutoencoderKL (SD-VAE ft-EMA / ft-MSE, SDXL, ...) behind the autoencoder contract of this package.

diffusers is an optional dependency (`pip install lit-diffusion[diffusers]`): it is imported only when an adapter
is built, never at import time of this module.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class DiffusersAutoencoder(nn.Module):
    """`encode(x) -> (mean, std)` and `decode(z) -> x` of a diffusers `AutoencoderKL`.

    Build it with `from_pretrained(location)`: a local folder written by `save_pretrained`, or a Hugging Face hub id
    such as "stabilityai/sd-vae-ft-ema" (downloaded by diffusers, so only on a machine with network access).
    """

    def __init__(self, vae: nn.Module, location: str = ""):
        super().__init__()
        self.vae, self.location = vae, location
        config = vae.config
        self.in_channels = int(config.in_channels)
        self.latent_channels = int(config.latent_channels)
        self.factor = 2 ** (len(config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, location: str, subfolder: str | None = None) -> "DiffusersAutoencoder":
        try:
            from diffusers import AutoencoderKL
        except ImportError:
            raise ImportError("a diffusers AutoencoderKL needs the diffusers package: pip install "
                              "'diffusers>=0.30' safetensors (or lit-diffusion[diffusers])") from None
        local = Path(location).expanduser()
        looks_local = local.exists() or location.startswith((".", "/", "~")) or location.count("/") != 1
        if looks_local and not (local / (subfolder or "") / "config.json").is_file():
            raise FileNotFoundError(f"autoencoder folder {location}{'/' + subfolder if subfolder else ''} does not "
                                    f"exist or holds no config.json: give a folder written by AutoencoderKL."
                                    f"save_pretrained, a hub id such as stabilityai/sd-vae-ft-ema, or a .ckpt "
                                    f"of `lit-diffusion fit -c experiments/autoencoder/...`")
        options = {"subfolder": subfolder} if subfolder else {}
        if looks_local:
            return cls(AutoencoderKL.from_pretrained(str(local), **options).eval(), location)
        try:  # a hub id: diffusers downloads it (or finds it in its cache)
            vae = AutoencoderKL.from_pretrained(location, **options)
        except Exception as error:  # offline, unknown id, ...: one message naming both readings of the name
            raise FileNotFoundError(f"autoencoder {location!r} is not a local folder, and loading it as a hub id "
                                    f"failed ({type(error).__name__}: {str(error).splitlines()[0][:200]}); give a "
                                    f"folder written by save_pretrained or a .ckpt of the framework's autoencoder") from None
        return cls(vae.eval(), location)

    def latent_shape(self, image_shape) -> list[int]:
        c, h, w = image_shape
        if c != self.in_channels or h % self.factor or w % self.factor:
            raise ValueError(f"AutoencoderKL {self.location}: images of shape {list(image_shape)} do not fit its "
                             f"{self.in_channels} channel(s) and downsampling factor {self.factor}")
        return [self.latent_channels, h // self.factor, w // self.factor]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.latent_shape(x.shape[1:])
        posterior = self.vae.encode(x).latent_dist
        return posterior.mean, posterior.std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[1] != self.latent_channels:
            raise ValueError(f"AutoencoderKL {self.location}: latents have {z.shape[1]} channels, it takes "
                             f"{self.latent_channels}")
        return self.vae.decode(z).sample
