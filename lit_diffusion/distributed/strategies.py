"""Strategy presets, chosen by name with `trainer.strategy: NAME` and tuned by `--distributed.*` options.

Presets (built here so that FSDP wraps and checkpoints the backbone's own repeated block, named by the
backbone's `block_class`; the model code is never edited, DESIGN §3):

  ddp                        DistributedDataParallel (NCCL on GPUs, gloo on the CPU)
  fsdp                       FSDP, full sharding (ZeRO-3 like) by default; see StrategyOptions
  fsdp_hybrid                FSDP, sharded inside a node and replicated across nodes (HYBRID_SHARD)
  fsdp2                      FSDP2 (fully_shard) through Lightning's ModelParallelStrategy, wrapped by
                             lit_diffusion.distributed.fsdp2 (EMA sharded like the model); runs on the CPU too
  deepspeed_stage_2          DeepSpeed ZeRO-2 (optimiser state and gradients sharded), bf16
  deepspeed_stage_2_offload  ... with the optimiser state offloaded to CPU memory
  deepspeed_stage_3          DeepSpeed ZeRO-3 (parameters sharded too), bf16
  deepspeed_stage_3_offload  ... with optimiser state and parameters offloaded to CPU memory
  deepspeed_stage_*_cpu      the same four on CPU ranks (gloo, DeepSpeed's CPU accelerator), float32 or bf16:
                             for trials and tests of the ZeRO paths without a GPU, not for training speed
                             (distributed/deepspeed_cpu.py); the _offload_cpu forms run DeepSpeed's offload code
                             path, though on CPU ranks the state is in CPU memory either way

Any other `trainer.strategy` value (a Lightning registry name or a class_path) goes to Lightning untouched.
FSDP and the GPU DeepSpeed presets need CUDA; DeepSpeed also the optional `deepspeed` package (`pip install
'lit_diffusion[deepspeed]'`).
"""
from __future__ import annotations

import importlib.util

import torch
from lightning.pytorch.strategies import DDPStrategy, Strategy
from torch import nn

from lit_diffusion.distributed.options import StrategyOptions, block_class_of

FSDP_PRESETS = ("fsdp", "fsdp_hybrid")
DEEPSPEED_GPU_PRESETS = ("deepspeed_stage_2", "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload")
DEEPSPEED_CPU_PRESETS = tuple(f"{name}_cpu" for name in DEEPSPEED_GPU_PRESETS)
DEEPSPEED_PRESETS = DEEPSPEED_GPU_PRESETS + DEEPSPEED_CPU_PRESETS
PRESETS = ("ddp", "fsdp2") + FSDP_PRESETS + DEEPSPEED_PRESETS
BF16_PRECISIONS = ("bf16-mixed", "bf16-true", "bf16")


class StrategyUnavailable(ValueError, ImportError):
    """A preset this machine cannot run (no CUDA, no `deepspeed`): the user's to change, reported in one line
    by the CLI (a ValueError); an ImportError too where the missing piece is a package."""


def build_strategy(name: str, backbone: nn.Module, options: StrategyOptions | None = None, *,
                   precision: str | int | None = None, num_nodes: int = 1, devices_per_node: int | None = None,
                   ) -> Strategy:
    """The Lightning strategy of preset `name` for this backbone. Raises ValueError for an unknown preset or
    a contradictory option, StrategyUnavailable (a ValueError) when this machine cannot run the preset."""
    import datetime

    options = options or StrategyOptions()
    timeout = datetime.timedelta(minutes=options.timeout_minutes)
    if name not in PRESETS:
        raise ValueError(f"trainer.strategy: unknown preset {name!r}; presets are {', '.join(PRESETS)}")
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=options.find_unused_parameters, timeout=timeout)
    if name in FSDP_PRESETS:
        return _fsdp(name, backbone, options, timeout, num_nodes, devices_per_node)
    if name == "fsdp2":
        block_class_of(backbone)  # fail now, not after the processes started
        from lit_diffusion.distributed.fsdp2 import FSDP2Strategy

        return FSDP2Strategy(options, timeout=timeout)
    return _deepspeed(name, precision, timeout)


def _fsdp(name, backbone, options, timeout, num_nodes, devices_per_node):
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import MixedPrecision

    block = block_class_of(backbone)
    sharding = options.sharding or ("hybrid" if name == "fsdp_hybrid" else "full")
    if name == "fsdp_hybrid" and sharding != "hybrid":
        raise ValueError(f"trainer.strategy=fsdp_hybrid contradicts --distributed.sharding {sharding}")
    kwargs = {}
    if sharding == "hybrid" and devices_per_node is not None:
        kwargs["device_mesh"] = (num_nodes, devices_per_node)  # replicate across nodes, shard inside one
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[options.mixed_precision]
    mixed = MixedPrecision(param_dtype=dtype, reduce_dtype=torch.float32, buffer_dtype=dtype) if dtype else None
    return FSDPStrategy(
        auto_wrap_policy={block},
        activation_checkpointing_policy={block} if options.activation_checkpointing else None,
        sharding_strategy={"full": "FULL_SHARD", "hybrid": "HYBRID_SHARD", "grad_op": "SHARD_GRAD_OP"}[sharding],
        state_dict_type=options.state_dict, mixed_precision=mixed, cpu_offload=options.cpu_offload,
        timeout=timeout, **kwargs)


def _deepspeed(name, precision, timeout):
    cpu = name.endswith("_cpu")
    instead = "ddp or fsdp2" if cpu else f"{name}_cpu (with --trainer.accelerator cpu), ddp or fsdp2"
    if importlib.util.find_spec("deepspeed") is None:
        raise StrategyUnavailable(f"trainer.strategy={name} needs the `deepspeed` package, which is not installed: "
                          f"pip install 'lit_diffusion[deepspeed]', or use {instead}")
    if not cpu and not torch.cuda.is_available():
        raise StrategyUnavailable(f"trainer.strategy={name} needs a CUDA GPU and this machine has none "
                           f"(torch.cuda.is_available() is False): use {name}_cpu with --trainer.accelerator cpu")
    allowed = BF16_PRECISIONS + (("32-true", "32") if cpu else ())
    if str(precision) not in allowed:
        raise ValueError(f"trainer.strategy={name} trains in {' or '.join(sorted({'bf16', *(['32-true'] if cpu else [])}))}"
                         f": set --trainer.precision {'32-true' if cpu else 'bf16-mixed'} (got {precision!r})")
    stage = 3 if "stage_3" in name else 2
    offload = "_offload" in name
    kwargs = dict(stage=stage, offload_optimizer=offload, offload_parameters=offload and stage == 3, timeout=timeout)
    if cpu:
        from lit_diffusion.distributed.deepspeed_cpu import CPUDeepSpeedStrategy

        return CPUDeepSpeedStrategy(**kwargs)
    from lit_diffusion.distributed.deepspeed_zero import ZeroStrategy

    return ZeroStrategy(**kwargs)
