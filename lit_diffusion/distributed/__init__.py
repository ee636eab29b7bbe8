"""lit_diffusion.distributed: strategies (DDP, FSDP, DeepSpeed presets), the SLURM cluster environment,
the pre-flight check across ranks, and checkpoint-and-requeue on a preemption signal.

`configure_trainer` is what the training CLI calls; the pieces are usable on their own."""
from lit_diffusion.distributed.configure import configure_trainer
from lit_diffusion.distributed.environment import slurm_plugins
from lit_diffusion.distributed.preemption import RequeueOnSignal, restart_count
from lit_diffusion.distributed.preflight import Preflight, PreflightError, config_hash
from lit_diffusion.distributed.strategies import PRESETS, StrategyOptions, build_strategy

__all__ = ["PRESETS", "Preflight", "PreflightError", "RequeueOnSignal", "StrategyOptions", "build_strategy",
           "config_hash", "configure_trainer", "restart_count", "slurm_plugins"]
