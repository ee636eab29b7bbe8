"""What every importer returns: the project backbone and objective (as config data, `class_path` + `init_args`,
the form `lit-diffusion fit` stores in checkpoints), the backbone's weights under the project's names, and the
shape of one sample. checkpoint.py turns it into a run folder."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

DIT = "lit_diffusion.backbones.DiT"
UNET = "lit_diffusion.backbones.UNet"
DDPM = "lit_diffusion.objectives.DDPM"

# Weights the project computes itself rather than stores (DiT's fixed sin-cos positions).
COMPUTED = {DIT: ("pos_embed",), UNET: ()}


@dataclass
class ImportedModel:
    backbone: dict  # {"class_path", "init_args"}
    objective: dict  # {"class_path", "init_args"}
    weights: dict[str, torch.Tensor]  # backbone state dict in the project's names, without COMPUTED entries
    sample_shape: list[int]  # one sample (C, H, W) as the backbone sees it (latents for a latent DiT)
    conditional: bool  # class-conditional: the module feeds labels
    source: dict = field(default_factory=dict)  # where it came from (format, location), kept in the checkpoint
    image_data: bool = False  # it generates images in [-1, 1] directly (a pixel U-Net), not latents


def ddpm_objective(prediction: str = "eps", schedule: str = "linear", variance: str = "fixed_small",
                   num_classes: int = 0, num_steps: int = 1000) -> dict:
    """The discrete DDPM the published models were trained with; a class-conditional one keeps DiT's label dropout
    (0.1, Peebles & Xie 2023 sec. 3) for tuning and its null class (index num_classes) for guidance."""
    init = {"prediction": prediction, "schedule": schedule, "discrete": True, "num_steps": num_steps,
            "variance": variance}
    if num_classes:
        init |= {"label_dropout": 0.1, "null_label": num_classes}
    return {"class_path": DDPM, "init_args": init}


def split_qkv(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The fused qkv projection of the project's SelfAttention from separate q, k, v linears (prefix.to_q, ...)."""
    names = [f"{prefix}.to_{n}" for n in "qkv"]
    return {"qkv.weight": torch.cat([state[f"{n}.weight"] for n in names]),
            "qkv.bias": torch.cat([state[f"{n}.bias"] for n in names]),
            "proj.weight": state[f"{prefix}.to_out.0.weight"], "proj.bias": state[f"{prefix}.to_out.0.bias"]}
