"""FSDP2 (torch.distributed.fsdp.fully_shard) applied from outside the model, and its checkpoints.

Wrapping: each instance of the backbone's `block_class` becomes one FSDP unit (its parameters are gathered
just before it runs and freed after), then the backbone root takes the rest (embeddings, final layer).
Optional: a mixed-precision policy (compute in bf16/fp16, gradients reduced in float32) and activation
checkpointing of each block (torch.distributed._composable.checkpoint, which keeps parameter names, so
checkpoints of sharded, DDP and single-process runs share one key set).

EMA under sharding (decision): the EMA shadow is wrapped exactly like the backbone (same blocks, same mesh,
no mixed precision: it is never trained), so its parameters are DTensors with the same placements as the
model's. `EMA.update` then averages each rank's local shards against each other: no gather, no
communication, 1/world of the EMA memory per rank. Sampling from the EMA gathers block by block like the
model does, all ranks together.

Checkpoints (decision): a full (consolidated) state dict, gathered to rank 0 in float32 with CPU offload,
with the same keys as an unsharded module. One format for every strategy: a sharded run resumes into any
world size (2 ranks -> 1, or 1 -> 4) and `lit-diffusion sample` reads it without torch.distributed. The
optimiser state is saved the same way, keyed by parameter name. For models whose full state does not fit
one host's memory, `save_sharded`/`load_sharded` write a torch.distributed.checkpoint (DCP) directory instead,
which also reshards on load into a different world size."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from lit_diffusion.distributed.options import StrategyOptions, block_class_of

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


def mixed_precision_policy(name: str) -> MixedPrecisionPolicy:
    """Compute in `name` ("bf16", "fp16" or "none"), reduce gradients in float32 (small gradients of a
    diffusion loss lose too much in a bf16 sum)."""
    if name not in DTYPES:
        raise ValueError(f"FSDP2: mixed_precision must be one of {sorted(DTYPES)}, got {name!r}")
    dtype = DTYPES[name]
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()


def shard_backbone(backbone: nn.Module, mesh=None, *, mixed_precision: str = "none",
                   activation_checkpointing: bool = False) -> nn.Module:
    """Shard `backbone` in place over `mesh` (default: all ranks): one FSDP unit per `block_class` module."""
    from torch.distributed._composable import checkpoint

    block = block_class_of(backbone)
    policy = mixed_precision_policy(mixed_precision)
    blocks = [m for m in backbone.modules() if isinstance(m, block)]
    if not blocks:
        raise ValueError(f"FSDP2: {type(backbone).__name__} has no {block.__name__} module to shard")
    for module in blocks:
        if activation_checkpointing:
            checkpoint(module)  # recompute the block in backward; keeps parameter names unchanged
        fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(backbone, mesh=mesh, mp_policy=policy)
    return backbone


def shard_module(module: nn.Module, mesh=None, *, mixed_precision: str = "none",
                 activation_checkpointing: bool = False) -> nn.Module:
    """Shard a DiffusionModule-like object: its `backbone`, and its `ema.shadow` with the same placements."""
    shard_backbone(module.backbone, mesh, mixed_precision=mixed_precision,
                   activation_checkpointing=activation_checkpointing)
    ema = getattr(module, "ema", None)
    if ema is not None:
        shard_backbone(ema.shadow, mesh)  # float32, no recomputation: never trained
    return module


# -- checkpoints -------------------------------------------------------------------------------------------
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state(module: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """{"model": ..., "optimizer": ...} consolidated on rank 0 (empty dicts on the other ranks). Every rank
    must call it: the gather is a collective."""
    state = {"model": get_model_state_dict(module, options=FULL)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(module, optimizer, options=FULL)
    return state


def load_full_state(module: nn.Module, state: dict, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Load a full state (from `full_state`, or an unsharded run) into a sharded or plain module: each rank
    keeps its own shard of it. Every rank passes the whole state (each reads the file)."""
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(module, state["model"], options=options)
    if optimizer is not None and "optimizer" in state:
        set_optimizer_state_dict(module, optimizer, state["optimizer"], options=options)


def save_sharded(directory: str | Path, module: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """A torch.distributed.checkpoint directory: each rank writes its own shards, in parallel."""
    import torch.distributed.checkpoint as dcp

    state = {"model": get_model_state_dict(module)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(module, optimizer)
    dcp.save(state, checkpoint_id=str(directory))


def load_sharded(directory: str | Path, module: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Read a DCP directory into this module's current sharding (any world size: DCP reshards on load)."""
    import torch.distributed.checkpoint as dcp

    state = {"model": get_model_state_dict(module)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(module, optimizer)
    dcp.load(state, checkpoint_id=str(directory))
    set_model_state_dict(module, state["model"])
    if optimizer is not None:
        set_optimizer_state_dict(module, optimizer, state["optimizer"])


# -- through Lightning ---------------------------------------------------------------------------------------
def _model_parallel_strategy():
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy


class FSDP2Strategy(_model_parallel_strategy()):
    """Lightning's ModelParallelStrategy (built on FSDP2) as pure data parallelism over every rank, with the
    module sharded by `shard_module` before Lightning sets it up (the model code is never edited).
    Checkpoints: full state on rank 0 (`--distributed.state_dict full`, the default) or a DCP directory."""

    def __init__(self, options: StrategyOptions | None = None, **kwargs):
        self.options = options or StrategyOptions()
        super().__init__(save_distributed_checkpoint=self.options.state_dict == "sharded", **kwargs)

    def setup_environment(self) -> None:
        # one mesh dimension over all ranks: every rank holds a shard, none does tensor parallelism
        self._data_parallel_size, self._tensor_parallel_size = self.num_nodes * self.num_processes, 1
        super().setup_environment()

    def setup(self, trainer) -> None:
        module = self.lightning_module
        if not getattr(module, "_fsdp2_applied", False):
            shard_module(module, self.device_mesh["data_parallel"], mixed_precision=self.options.mixed_precision,
                         activation_checkpointing=self.options.activation_checkpointing)
            module._fsdp2_applied = True
        super().setup(trainer)
