"""DeepSpeed ZeRO on CPU ranks, for trials and tests (presets `deepspeed_stage_2_cpu`, `deepspeed_stage_3_cpu`
and their `_offload` forms; distributed/strategies.py).

Lightning's DeepSpeedStrategy refuses any accelerator but CUDA in `setup_environment`, although DeepSpeed itself
runs on the CPU: its CPU accelerator (chosen by DS_ACCELERATOR=cpu, or found when no GPU is present) and the
gloo backend (its fall-back when oneCCL is absent). `CPUDeepSpeedStrategy` lifts that check (and the one that GPU indices equal local ranks) when the
accelerator is Lightning's CPU accelerator and DeepSpeed's is its CPU accelerator; everything else (the ZeRO
engine, partitioning, checkpoint folders) is DeepSpeed's own code, unchanged. It is slow and meant for proving
the ZeRO paths on a laptop or in CI, not for training; on GPUs use the `deepspeed_stage_*` presets.
"""
from __future__ import annotations

import os

from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import DeepSpeedStrategy

from lit_diffusion.distributed.deepspeed_zero import ZeroStrategy


def use_cpu_accelerator() -> None:
    """Make DeepSpeed's accelerator its CPU one (before DeepSpeed first asks for it). Raises RuntimeError when
    DeepSpeed already chose another in this process."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.accelerator import get_accelerator

    name = get_accelerator().device_name()
    if name != "cpu":
        raise RuntimeError(f"DeepSpeed already chose its {name!r} accelerator in this process; the *_cpu presets "
                           "need DS_ACCELERATOR=cpu set before the run starts")


class CPUDeepSpeedStrategy(ZeroStrategy):
    """DeepSpeedStrategy on Lightning's CPU accelerator (gloo). Only what assumes CUDA device indices differs."""

    strategy_name = "deepspeed_cpu"

    def setup_environment(self) -> None:
        if not isinstance(self.accelerator, CPUAccelerator):
            raise RuntimeError(f"the *_cpu DeepSpeed presets run on --trainer.accelerator cpu, got "
                               f"{type(self.accelerator).__name__}; on GPUs use the deepspeed_stage_* presets")
        use_cpu_accelerator()
        # DeepSpeedStrategy.setup_environment is its CUDA check, then DDPStrategy's: skip only the check
        super(DeepSpeedStrategy, self).setup_environment()

    def setup_distributed(self) -> None:
        # as DeepSpeedStrategy's, less its check that device indices equal local ranks (CPU devices have none)
        from lightning.fabric.utilities.seed import reset_seed

        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _setup_model_and_optimizer(self, model, optimizer, lr_scheduler=None):
        # as DeepSpeedStrategy's, but DeepSpeed's device rank is the local rank (a CPU device has no index)
        import argparse

        import deepspeed

        engine, deepspeed_optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank), config=self.config, model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad], optimizer=optimizer,
            lr_scheduler=lr_scheduler, dist_init_required=False)
        return engine, deepspeed_optimizer
