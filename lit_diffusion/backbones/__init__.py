"""Backbones: pure-torch networks with the contract forward(x, t, cond=None, r=None) -> Tensor shaped like x
(r: the optional second time input, see backbones/second_time.py; forward-mode derivatives of a backbone:
`lit_diffusion.contract.network_jvp`).

`DiT.from_preset("S/2", in_channels=4, input_size=32, num_classes=1000)` and
`UNet.from_preset("ddpm-cifar10", in_channels=3)` build the named sizes in `DIT_PRESETS` / `UNET_PRESETS`.
Each backbone names its repeated block in `block_class` (for FSDP wrapping and activation checkpointing
applied from outside) and puts all weight initialisation in `initialize_weights()`.
"""
from lit_diffusion.backbones.dit import DiT, DiTBlock
from lit_diffusion.backbones.flows import IdentityFlow, MultiscaleFlow, VectorFlow, multiscale_flow_from_preset
from lit_diffusion.backbones.indm_network import INDMNetwork
from lit_diffusion.backbones.mlp import MLP
from lit_diffusion.backbones.presets import DIT_PRESETS, UNET_PRESETS
from lit_diffusion.backbones.unet import UNet, UNetBlock


def dit_from_preset(name: str, **kwargs) -> DiT:
    """`DiT.from_preset` as a function (usable as a config `class_path` target)."""
    return DiT.from_preset(name, **kwargs)


def unet_from_preset(name: str, **kwargs) -> UNet:
    """`UNet.from_preset` as a function (usable as a config `class_path` target)."""
    return UNet.from_preset(name, **kwargs)


__all__ = [
    "DIT_PRESETS",
    "UNET_PRESETS",
    "DiT",
    "DiTBlock",
    "IdentityFlow",
    "INDMNetwork",
    "MultiscaleFlow",
    "VectorFlow",
    "multiscale_flow_from_preset",
    "MLP",
    "UNet",
    "UNetBlock",
    "dit_from_preset",
    "unet_from_preset",
]
