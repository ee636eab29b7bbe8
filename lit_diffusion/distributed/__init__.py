"""lit_diffusion.distributed: which process this is (`process`: rank, world size, device, the one place that
decides), strategies (DDP, FSDP, DeepSpeed presets), the SLURM cluster environment, the pre-flight check
across ranks, and checkpoint-and-requeue on a preemption signal.

Importing this package imports nothing: `process` is torch-only and is read from folders that must not reach
Lightning (data, evaluation, generation). The Lightning pieces keep their package-level names
(`from lit_diffusion.distributed import configure_trainer`), loaded from their modules on first use (PEP 562)."""
from __future__ import annotations

import importlib

# name -> the module that defines it, imported when the name is first asked for
_LAZY = {"configure_trainer": "configure", "slurm_plugins": "environment", "RequeueOnSignal": "preemption",
         "restart_count": "preemption", "Preflight": "preflight", "PreflightError": "preflight",
         "config_hash": "preflight", "PRESETS": "strategies", "StrategyOptions": "options",
         "build_strategy": "strategies"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
