"""What the training CLI asks of this package: turn a preset name in `trainer.strategy` into a strategy for
the backbone, add the SLURM environment, and the pre-flight and requeue callbacks."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from lit_diffusion.distributed.environment import slurm_plugins
from lit_diffusion.distributed.preemption import RequeueOnSignal
from lit_diffusion.distributed.preflight import Preflight
from lit_diffusion.distributed.strategies import PRESETS, StrategyOptions, build_strategy


def configure_trainer(config: dict, backbone: nn.Module, options: StrategyOptions | None, *, config_hash: str,
                      checkpoint_dir: str | Path, fit: bool) -> tuple[dict, list]:
    """Returns (trainer config, extra callbacks). `config` is the Trainer's keyword arguments."""
    config = dict(config)
    strategy = config.get("strategy")
    if isinstance(strategy, str) and strategy in PRESETS:
        devices = config.get("devices")
        config["strategy"] = build_strategy(strategy, backbone, options, precision=config.get("precision"),
                                            num_nodes=int(config.get("num_nodes") or 1),
                                            devices_per_node=devices if isinstance(devices, int) else None)
    plugins = list(config.get("plugins") or [])
    if not any(type(p).__name__ == "SLURMEnvironment" for p in plugins):
        plugins += slurm_plugins((options or StrategyOptions()).preflight_timeout_seconds)
    config["plugins"] = plugins
    callbacks = [Preflight(config_hash)]
    if fit:
        callbacks.append(RequeueOnSignal(checkpoint_dir))
    return config, callbacks
