"""Which importer reads a diffusers model: decided by the class its config.json names."""
from __future__ import annotations

from lit_diffusion.published.diffusers_folder import read_diffusers_model
from lit_diffusion.published.dit_diffusers import CLASSES as DIT_CLASSES
from lit_diffusion.published.dit_diffusers import import_diffusers_dit
from lit_diffusion.published.imported import ImportedModel
from lit_diffusion.published.keys import WrongCheckpoint
from lit_diffusion.published.unet_diffusers import import_diffusers_unet

IMPORTERS = {**{name: import_diffusers_dit for name in DIT_CLASSES}, "UNet2DModel": import_diffusers_unet}


def import_diffusers(location: str, variance: str | None = None) -> ImportedModel:
    """A diffusers DiT or DDPM U-Net (folder or hub id) as a project backbone and objective."""
    model = read_diffusers_model(location)
    name = model.config.get("_class_name")
    if name not in IMPORTERS:
        raise WrongCheckpoint(f"{model.where} holds a {name!r}; the import reads {sorted(IMPORTERS)} (a DiT pipeline's "
                              f"transformer, a DDPM pipeline's unet)")
    return IMPORTERS[name](model, variance)
