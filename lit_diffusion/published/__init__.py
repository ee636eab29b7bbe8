"""Published models in: state-dict mappings from diffusers (DiTTransformer2DModel, UNet2DModel in the DDPM
layout) and from the original facebookresearch/DiT checkpoints to the project's backbones, and the one writer
of project checkpoints for them (`lit-diffusion import`)."""
from lit_diffusion.published.checkpoint import build_module, write_imported
from lit_diffusion.published.diffusers_folder import read_diffusers_model
from lit_diffusion.published.dispatch import import_diffusers
from lit_diffusion.published.dit_diffusers import import_diffusers_dit
from lit_diffusion.published.dit_original import import_dit_pt
from lit_diffusion.published.imported import ImportedModel
from lit_diffusion.published.keys import WrongCheckpoint
from lit_diffusion.published.unet_diffusers import import_diffusers_unet

__all__ = ["ImportedModel", "WrongCheckpoint", "build_module", "import_diffusers", "import_diffusers_dit",
           "import_diffusers_unet", "import_dit_pt", "read_diffusers_model", "write_imported"]
