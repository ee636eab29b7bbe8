"""`lit-diffusion import diffusers SOURCE --out RUN` and `lit-diffusion import dit-pt FILE --out RUN`: published
models in, as project checkpoints (RUN/checkpoints/last.ckpt) that `sample`, scoring, distillation and tuning take
like any trained run. The mappings live in lit_diffusion/published."""
from __future__ import annotations

from typing import Optional

from lit_diffusion.commands.parsing import run

SD_VAE_SCALE = 0.18215  # Rombach et al. 2022, App. G: SD-VAE latents times this have about unit variance (DiT's)


def _latent(model, autoencoder: Optional[str], subfolder: Optional[str], latent_scale: float):
    """The LatentSpace (data/latent_space.py) of a latent-space model: its autoencoder and normalisation."""
    channels = model.sample_shape[0]
    if autoencoder is None:
        if channels not in (1, 3):
            raise ValueError(f"this model works on {channels}-channel latents: give their autoencoder with "
                             f"--autoencoder (DiT: stabilityai/sd-vae-ft-ema, or a folder written by "
                             f"AutoencoderKL.save_pretrained), so that `sample` decodes to images")
        return None
    from lit_diffusion.data.latent_space import LatentSpace
    from lit_diffusion.generation.latents import open_autoencoder

    vae, record = open_autoencoder(autoencoder, subfolder)
    if record.latent_channels != channels:
        raise ValueError(f"the autoencoder {autoencoder} has {record.latent_channels} latent channels, the model "
                         f"takes {channels}")
    c, h, w = model.sample_shape
    image = (record.in_channels, h * record.factor, w * record.factor)
    return LatentSpace(record, {"kind": "scalar", "scale": float(latent_scale), "shift": 0.0}, image, flips=False)


def _write(model, out: str, autoencoder, autoencoder_subfolder, latent_scale, overwrite) -> int:
    from lit_diffusion.published import write_imported

    latent = _latent(model, autoencoder, autoencoder_subfolder, latent_scale)
    path = write_imported(model, out, latent, overwrite)
    backbone, objective = model.backbone, model.objective
    size = {k: backbone["init_args"][k] for k in ("depth", "hidden_size", "channels") if k in backbone["init_args"]}
    print(f"wrote {path}: {backbone['class_path'].rsplit('.', 1)[-1]} {size}, "
          f"{objective['class_path'].rsplit('.', 1)[-1]} {objective['init_args']}, sample shape "
          f"{model.sample_shape}{', latents of ' + str(latent.autoencoder.location) if latent else ''}")
    print(f"next: lit-diffusion sample --ckpt {path} --out {out}/samples --sampler ddpm --nfe 250")
    return 0


def diffusers(source: str, *, out: str, variance: Optional[str] = None, autoencoder: Optional[str] = None,
              autoencoder_subfolder: Optional[str] = None, latent_scale: float = SD_VAE_SCALE,
              overwrite: bool = False) -> int:
    """Import a diffusers DiT (DiTTransformer2DModel) or DDPM U-Net (UNet2DModel) as a project checkpoint.

    The objective comes from the pipeline's scheduler config where there is one (else: eps, linear betas, 1000
    steps); a network with twice the data channels gets the learned variance (Improved DDPM).
    Example: lit-diffusion import diffusers google/ddpm-cifar10-32 --out runs/ddpm-cifar10

    Args:
        source: a diffusers pipeline folder (with transformer/ or unet/), a model folder (save_pretrained), or a
            hub id (downloaded; needs network access).
        out: run folder to write (the checkpoint goes to OUT/checkpoints/last.ckpt).
        variance: reverse-step variance of a mean-only network: fixed_small or fixed_large (default: the
            scheduler's variance_type).
        autoencoder: the autoencoder of a latent model (hub id, save_pretrained folder, or a framework .ckpt).
        autoencoder_subfolder: its subfolder (e.g. vae of a pipeline).
        latent_scale: the latents the model sees are the autoencoder's times this (SD-VAE: 0.18215).
        overwrite: replace an existing OUT/checkpoints/last.ckpt.
    """
    from lit_diffusion.published import import_diffusers

    return _write(import_diffusers(source, variance), out, autoencoder, autoencoder_subfolder, latent_scale, overwrite)


def dit_pt(checkpoint: str, *, out: str, num_heads: Optional[int] = None, autoencoder: Optional[str] = None,
           autoencoder_subfolder: Optional[str] = None, latent_scale: float = SD_VAE_SCALE,
           overwrite: bool = False) -> int:
    """Import an original facebookresearch/DiT checkpoint (DiT-XL-2-256x256.pt) as a project checkpoint.

    The model computes the original DiT exactly (its time features and norms), with DDPM (eps, linear betas,
    1000 steps) and the learned variance of its 2x channels.
    Example: lit-diffusion import dit-pt DiT-XL-2-256x256.pt --out runs/dit-xl2 --autoencoder stabilityai/sd-vae-ft-ema

    Args:
        checkpoint: the .pt file (a state dict, or a train.py checkpoint whose EMA is taken).
        out: run folder to write (the checkpoint goes to OUT/checkpoints/last.ckpt).
        num_heads: attention heads (default: those of the DiT size with this width: S 6, B 12, L and XL 16).
        autoencoder: the autoencoder of the latents (DiT: stabilityai/sd-vae-ft-ema or -mse).
        autoencoder_subfolder: its subfolder (e.g. vae of a pipeline).
        latent_scale: the latents the model sees are the autoencoder's times this (SD-VAE: 0.18215).
        overwrite: replace an existing OUT/checkpoints/last.ckpt.
    """
    from lit_diffusion.published import import_dit_pt

    return _write(import_dit_pt(checkpoint, num_heads), out, autoencoder, autoencoder_subfolder, latent_scale,
                  overwrite)


COMMANDS = {"_help": "import a published model as a project checkpoint", "diffusers": diffusers, "dit-pt": dit_pt}


def main(argv: list[str]) -> int:
    return run(COMMANDS, argv, "lit-diffusion import", errors=(ValueError, FileNotFoundError), error_status=1)
