"""The scalar latent normalisation an autoencoder is published with: a diffusers VAE's `scaling_factor` (SD-VAE
0.18215, SDXL 0.13025) and `shift_factor` (SD3 / FLUX), x = (z - shift) * scale, as diffusers pipelines use them.
The autoencoder is duck-typed (its `.vae.config`), so data/ imports no autoencoder class."""
from __future__ import annotations

from typing import Any, Optional


def scalar_constants(autoencoder: Any, kind: str, normalization: str,
                     scale: Optional[float]) -> tuple[Optional[float], float]:
    """(scale, shift) for `data encode`: the scale asked for (shift 0), else a diffusers VAE's own constants for
    scalar normalisation, else (None, 0): the encoder computes 1 / std over the dataset."""
    if kind != "diffusers" or normalization != "scalar" or scale is not None:
        return scale, 0.0
    config = autoencoder.vae.config
    return float(config.scaling_factor), float(getattr(config, "shift_factor", None) or 0.0)
