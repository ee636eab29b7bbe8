"""The options of the strategy presets and the backbone's repeated block: what both the preset builder
(strategies.py) and the FSDP2 wrapper (fsdp2.py) need, in a module that imports neither of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn


@dataclass
class StrategyOptions:
    """Options of the `trainer.strategy` presets (`--distributed.NAME VALUE`)."""

    sharding: Literal["full", "hybrid", "grad_op"] | None = None
    """FSDP sharding: full (params, grads, optimiser state), hybrid (full inside a node, replicated across
    nodes), grad_op (ZeRO-2 like). Default: full for `fsdp`, hybrid for `fsdp_hybrid`."""
    activation_checkpointing: bool = False
    """FSDP: recompute each backbone block in the backward pass (less memory, ~30% more compute)."""
    mixed_precision: Literal["bf16", "fp16", "none"] = "bf16"
    """FSDP: compute dtype of the wrapped blocks (gradients are reduced in float32)."""
    state_dict: Literal["sharded", "full"] = "full"
    """FSDP checkpoints: one consolidated file gathered on rank 0 (what `--ckpt_path last` and requeued jobs
    resume from), or one shard per rank in a directory (faster for large models; resume it with an explicit
    `--ckpt_path DIR` and the same world size)."""
    cpu_offload: bool = False
    """FSDP: keep parameters in CPU memory between uses."""
    find_unused_parameters: bool = False
    """DDP: allow parameters that get no gradient in a step (slower)."""
    timeout_minutes: int = 30
    """Collective timeout: a rank that waits longer than this fails instead of hanging."""

    preflight_timeout_seconds: float = 300
    """SLURM jobs of several ranks: every rank must reach the master within this long before training starts,
    or the job fails naming the node that cannot (instead of waiting out the collective timeout)."""

    def __post_init__(self) -> None:
        if self.timeout_minutes < 1:
            raise ValueError(f"--distributed.timeout_minutes must be >= 1, got {self.timeout_minutes}")
        if self.preflight_timeout_seconds <= 0:
            raise ValueError(f"--distributed.preflight_timeout_seconds must be > 0, got {self.preflight_timeout_seconds}")


def block_class_of(backbone: nn.Module) -> type[nn.Module]:
    block = getattr(backbone, "block_class", None)
    if not (isinstance(block, type) and issubclass(block, nn.Module)):
        raise TypeError(f"{type(backbone).__name__} does not name its repeated block in `block_class`; FSDP presets "
                        "wrap and checkpoint that block (DESIGN §3)")
    return block
