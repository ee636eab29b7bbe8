"""Objectives: pure-torch training objectives over Gaussian paths (t in [0, 1], 0 = data, 1 = noise).

`obj.loss(net, x0, cond=None) -> (B,)` and `obj.sample(net, noise, sampler=..., nfe=..., cond=None,
guidance=1.0, generator=None) -> x0`, where net(x_t, t, cond) follows the backbone contract.
"""
from lit_diffusion.objectives.analytic import GaussianMixture, oracle_network
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput
from lit_diffusion.objectives.consistency_distillation import ConsistencyDistillation
from lit_diffusion.objectives.consistency_training import ConsistencyTraining
from lit_diffusion.objectives.consistency_tuning import ConsistencyTuning
from lit_diffusion.objectives.continuous_consistency import ContinuousConsistency
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap
from lit_diffusion.objectives.mean_flow import MeanFlow
from lit_diffusion.objectives.progressive_distillation import ProgressiveDistillation
from lit_diffusion.objectives.shortcut import ShortcutModel
from lit_diffusion.objectives.trigflow import TrigFlowParameterisation, TrigFlowPath
from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives.conversions import convert
from lit_diffusion.objectives.ddpm import DDPM
from lit_diffusion.objectives.flow_matching import FlowMatching
from lit_diffusion.objectives.indm import INDM
from lit_diffusion.objectives.likelihood_weighting import LikelihoodWeighting, LogSNRUniformTime
from lit_diffusion.objectives.pfgmpp import PFGMPP
from lit_diffusion.objectives.parameterisation import (
    ConsistencyPreconditioning,
    EDMPreconditioning,
    QuantityParameterisation,
    make_parameterisation,
)
from lit_diffusion.objectives.paths import (
    DiscreteVPPath,
    EDMSigmaPath,
    GaussianPath,
    LinearPath,
    OTFlowPath,
    VPCosinePath,
    VPLinearPath,
    make_path,
)
from lit_diffusion.objectives.registry import build
from lit_diffusion.objectives.rectified_flow import RectifiedFlow, straightness
from lit_diffusion.objectives.time_samplers import (
    ConsistencyCurriculum,
    DiscreteUniformTime,
    LogitNormalTime,
    LogNormalSigma,
    PairSampler,
    UniformGridPairs,
    UniformTime,
    make_time_sampler,
)
from lit_diffusion.objectives.weightings import (
    EDMWeighting,
    InverseGapWeighting,
    MinSNRWeighting,
    PairWeighting,
    UniformPairWeighting,
    UniformWeighting,
    make_pair_weighting,
    make_weighting,
)

OBJECTIVES = {
    "ddpm": DDPM,
    "flow_matching": FlowMatching,
    "rectified_flow": RectifiedFlow,
    "consistency_training": ConsistencyTraining,
    "consistency_distillation": ConsistencyDistillation,
    "indm": INDM,
    "mean_flow": MeanFlow,
    "continuous_consistency": ContinuousConsistency,
    "consistency_tuning": ConsistencyTuning,
    "shortcut": ShortcutModel,
    "progressive_distillation": ProgressiveDistillation,
    "pfgmpp": PFGMPP,
}


def make_objective(name: str, **kwargs) -> DiffusionObjective:
    return build("objective", OBJECTIVES, name, **kwargs)



__all__ = [
    # the math contract (lit_diffusion.contract) and conversions
    "PathCoefficients", "Prediction", "convert",
    # objectives
    "OBJECTIVES", "make_objective", "build", "DiffusionObjective", "LossOutput",
    "INDM", "LikelihoodWeighting", "LogSNRUniformTime",
    "DDPM", "FlowMatching", "RectifiedFlow", "straightness", "ConsistencyTraining", "ConsistencyDistillation",
    "MeanFlow", "ContinuousConsistency", "ConsistencyTuning", "ShortcutModel", "ProgressiveDistillation",
    "PFGMPP", "TrigFlowPath", "TrigFlowParameterisation",
    # paths
    "GaussianPath", "VPLinearPath", "VPCosinePath", "DiscreteVPPath", "LinearPath", "OTFlowPath", "EDMSigmaPath",
    "make_path",
    # parameterisations
    "QuantityParameterisation", "EDMPreconditioning", "ConsistencyPreconditioning", "make_parameterisation",
    # time samplers and pair samplers
    "UniformTime", "DiscreteUniformTime", "LogitNormalTime", "LogNormalSigma", "make_time_sampler",
    "PairSampler", "ConsistencyCurriculum", "UniformGridPairs",
    # weightings and pair weightings
    "UniformWeighting", "MinSNRWeighting", "EDMWeighting", "make_weighting",
    "PairWeighting", "InverseGapWeighting", "UniformPairWeighting", "make_pair_weighting",
    # closed-form Gaussian mixtures (oracles, toy data)
    "GaussianMixture", "oracle_network", "GaussianFlowMap",
]
