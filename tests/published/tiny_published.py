"""Tiny randomly initialised diffusers models in the published layouts, written by save_pretrained (the import
reads what diffusers writes), for the import tests. diffusers is a test-only dependency (the dev extra)."""
from __future__ import annotations

from pathlib import Path

import torch

UNET_DDPM = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64),
                 down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                 attention_head_dim=None, norm_eps=1e-6, norm_num_groups=8, downsample_padding=0,
                 flip_sin_to_cos=False, freq_shift=1)  # google/ddpm-cifar10-32's layout, smaller
DIT = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
           sample_size=8, patch_size=2, num_embeds_ada_norm=10)  # DiT-XL/2's layout (learned variance), smaller


def tiny_unet(seed: int = 0, **overrides):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(**{**UNET_DDPM, **overrides}).eval()


def tiny_dit(seed: int = 0, **overrides):
    """A random DiTTransformer2DModel whose per-block embedder copies are tied to block 0's (as in a converted
    DiT checkpoint: diffusers uses block 0's alone)."""
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(seed)
    model = DiTTransformer2DModel(**{**DIT, **overrides}).eval()
    first = model.transformer_blocks[0].norm1.emb.state_dict()
    for block in model.transformer_blocks[1:]:
        block.norm1.emb.load_state_dict(first)
    return model


def save_pipeline(model, scheduler, folder: Path, component: str) -> Path:
    """A pipeline folder as diffusers lays it out: COMPONENT/ and scheduler/ beside a model_index.json."""
    model.save_pretrained(folder / component)
    scheduler.save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text('{"_class_name": "DiffusionPipeline", "%s": ["diffusers", "%s"], '
                                             '"scheduler": ["diffusers", "%s"]}'
                                             % (component, type(model).__name__, type(scheduler).__name__))
    return folder


def original_dit_state(model) -> dict[str, torch.Tensor]:
    """The state dict facebookresearch/DiT's models.py would hold for the same weights (their names; fused qkv;
    the fixed positions as a tensor), written from diffusers' names for the test."""
    s = model.state_dict()
    emb = "transformer_blocks.0.norm1.emb"
    out = {"x_embedder.proj.weight": s["pos_embed.proj.weight"], "x_embedder.proj.bias": s["pos_embed.proj.bias"],
           "pos_embed": model.pos_embed.pos_embed.clone(),
           "y_embedder.embedding_table.weight": s[f"{emb}.class_embedder.embedding_table.weight"],
           "final_layer.adaLN_modulation.1.weight": s["proj_out_1.weight"],
           "final_layer.adaLN_modulation.1.bias": s["proj_out_1.bias"],
           "final_layer.linear.weight": s["proj_out_2.weight"], "final_layer.linear.bias": s["proj_out_2.bias"]}
    for kind in ("weight", "bias"):
        out[f"t_embedder.mlp.0.{kind}"] = s[f"{emb}.timestep_embedder.linear_1.{kind}"]
        out[f"t_embedder.mlp.2.{kind}"] = s[f"{emb}.timestep_embedder.linear_2.{kind}"]
        for i in range(len(model.transformer_blocks)):
            b = f"transformer_blocks.{i}"
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([s[f"{b}.attn1.to_{n}.{kind}"] for n in "qkv"])
            out[f"blocks.{i}.attn.proj.{kind}"] = s[f"{b}.attn1.to_out.0.{kind}"]
            out[f"blocks.{i}.mlp.fc1.{kind}"] = s[f"{b}.ff.net.0.proj.{kind}"]
            out[f"blocks.{i}.mlp.fc2.{kind}"] = s[f"{b}.ff.net.2.{kind}"]
            out[f"blocks.{i}.adaLN_modulation.1.{kind}"] = s[f"{b}.norm1.linear.{kind}"]
    return out


def diffusers_time_index(t: torch.Tensor) -> torch.Tensor:
    """The project time of diffusers' 0-based timestep k: t = (k + 1) / 1000 (objectives/paths.py)."""
    return (t.double() + 1) / 1000.0


def project_grid(timesteps: torch.Tensor) -> torch.Tensor:
    """The project time grid of a diffusers scheduler's timesteps, ending at t = 0."""
    return torch.cat([diffusers_time_index(timesteps), torch.zeros(1, dtype=torch.float64)])
