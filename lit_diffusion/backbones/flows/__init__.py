"""Normalizing flows: invertible nn.Modules with exact log-determinants, `forward(x) -> (z, log_det)` and
`inverse(z) -> x` (base.Flow). Used by INDM (objectives/indm.py) through backbones.INDMNetwork."""
from lit_diffusion.backbones.flows.actnorm import ActNorm
from lit_diffusion.backbones.flows.base import Flow, FlowSequence
from lit_diffusion.backbones.flows.coupling import AffineCoupling
from lit_diffusion.backbones.flows.identity import IdentityFlow
from lit_diffusion.backbones.flows.invconv import InvConv1x1
from lit_diffusion.backbones.flows.multiscale import FLOW_PRESETS, MultiscaleFlow, flow_step
from lit_diffusion.backbones.flows.realnvp import VectorFlow


def multiscale_flow_from_preset(name: str, in_channels: int = 3) -> MultiscaleFlow:
    """`MultiscaleFlow.from_preset` as a function (a config `class_path` target)."""
    return MultiscaleFlow.from_preset(name, in_channels=in_channels)


__all__ = ["Flow", "FlowSequence", "ActNorm", "InvConv1x1", "AffineCoupling", "IdentityFlow", "MultiscaleFlow",
           "VectorFlow", "FLOW_PRESETS", "flow_step", "multiscale_flow_from_preset"]
