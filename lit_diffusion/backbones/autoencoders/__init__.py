"""Autoencoders for latent diffusion: pure-torch modules with one contract,

    encode(x) -> (mean, std)    x (B, C, H, W) images in [-1, 1]; the diagonal Gaussian posterior q(z | x)
    decode(z) -> x              z (B, c, h, w) -> images in [-1, 1] (not clamped)

plus `latent_shape(image_shape)`. `KLAutoencoder` is the framework's own (trained with `lit-diffusion fit -c
experiments/autoencoder/...`); `DiffusersAutoencoder` wraps diffusers' AutoencoderKL (the optional `diffusers`
extra, imported only when one is built). Neither knows about diffusion or normalisation of latents.
"""
from lit_diffusion.backbones.autoencoders.diffusers_vae import DiffusersAutoencoder
from lit_diffusion.backbones.autoencoders.kl_autoencoder import KLAutoencoder, weights_digest

__all__ = ["DiffusersAutoencoder", "KLAutoencoder", "weights_digest"]
