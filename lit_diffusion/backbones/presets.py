"""Named size presets of the backbones, as data. Look them up with `preset_config`.

DiT sizes are Table 1 of Peebles & Xie 2023 (depth, hidden size, heads) crossed with patch
sizes 2, 4, 8. The U-Net "ddpm-cifar10" preset is the CIFAR-10 model of Ho et al. 2020
(App. B: 128 channels, multipliers 1,2,2,2, two residual blocks per level, self-attention
at 16x16, dropout 0.1, additive time conditioning; 35.7M parameters) and computes their function: stride-2
convolutions padded right and bottom, sin-first time features with frequencies exp(-ln 1e4 i / (half - 1)).
"""
from __future__ import annotations

from typing import Any

_DIT_SIZES = {  # name: (depth, hidden_size, num_heads)
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (28, 1152, 16),
}

DIT_PRESETS: dict[str, dict[str, Any]] = {
    f"{size}/{patch}": {"depth": depth, "hidden_size": hidden, "num_heads": heads, "patch_size": patch}
    for size, (depth, hidden, heads) in _DIT_SIZES.items()
    for patch in (2, 4, 8)
}
DIT_PRESETS["debug"] = {"depth": 2, "hidden_size": 64, "num_heads": 4, "patch_size": 2}

UNET_PRESETS: dict[str, dict[str, Any]] = {
    "ddpm-cifar10": {
        "channels": 128,
        "channel_mult": (1, 2, 2, 2),
        "num_res_blocks": 2,
        "attention_levels": (1,),  # 16x16 for 32x32 inputs
        "num_heads": 1,
        "dropout": 0.1,
        "norm_groups": 32,
        "scale_shift": False,  # DDPM adds the time embedding; ADM / DDPM++ scale-shift
        "downsample_padding": "right_bottom",  # TensorFlow's "SAME" for stride 2 (Ho et al.'s code)
        "time_embedding": "ho",  # Ho et al.'s get_timestep_embedding
    },
    "small": {
        "channels": 64,
        "channel_mult": (1, 2, 2),
        "num_res_blocks": 2,
        "attention_levels": (1, 2),
        "num_heads": 2,
        "dropout": 0.1,
        "norm_groups": 32,
        "scale_shift": True,
    },
    "debug": {
        "channels": 16,
        "channel_mult": (1, 2),
        "num_res_blocks": 1,
        "attention_levels": (1,),
        "num_heads": 1,
        "dropout": 0.0,
        "norm_groups": 8,
        "scale_shift": True,
    },
}


def preset_config(presets: dict[str, dict[str, Any]], name: str, model: str) -> dict[str, Any]:
    """Copy of the named preset's config; ValueError naming the allowed presets otherwise."""
    if name not in presets:
        raise ValueError(f"unknown {model} preset {name!r}; choose one of {sorted(presets)}")
    return dict(presets[name])
