"""The DeepSpeed strategy of the `deepspeed_stage_*` presets: Lightning's DeepSpeedStrategy, plus the restore of
frozen parameters that DeepSpeed's ZeRO-3 resume leaves out.

Why: under ZeRO-3 DeepSpeed partitions every parameter of the module it wraps, the frozen ones too (here the
EMA's shadow model, training/ema.py), and saves each rank's slice of a frozen parameter as a "fragment" beside
the module states. Its `load_checkpoint` restores the trained parameters from the optimiser's partitions but
loads the module's state dict, in which a partitioned parameter is an empty tensor, so a frozen parameter keeps
the value it had before the load: a resumed EMA would silently restart from the initial weights. After
DeepSpeed's load, `ZeroStrategy` merges the saved fragments into full tensors (DeepSpeed's zero_to_fp32
utilities, which read any world size) and copies into each frozen parameter the slice this rank holds now, so
a folder saved on N ranks resumes its EMA on M ranks."""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy


def partition_of(full: torch.Tensor, rank: int, numel: int) -> torch.Tensor:
    """This rank's slice (`numel` elements) of a flattened tensor, zero-padded at the end as ZeRO-3 pads."""
    flat = full.reshape(-1)
    start = rank * numel
    out = torch.zeros(numel, dtype=flat.dtype)
    piece = flat[start:start + numel]
    out[:piece.numel()] = piece
    return out


@torch.no_grad()
def restore_frozen_partitions(module: torch.nn.Module, folder: str | Path, rank: int) -> int:
    """Copy into each partitioned frozen parameter of `module` its slice of the values saved in the DeepSpeed
    `folder`; returns how many were restored."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    frozen = {name: p for name, p in module.named_parameters() if hasattr(p, "ds_tensor") and not p.requires_grad}
    if not frozen:
        return 0
    saved = get_fp32_state_dict_from_zero_checkpoint(str(folder))
    missing = sorted(set(frozen) - set(saved))
    if missing:
        raise RuntimeError(f"checkpoint {folder} holds no saved value of the frozen parameter(s) "
                           f"{', '.join(missing[:3])}: it cannot resume this model's EMA")
    for name, p in frozen.items():
        local = p.ds_tensor
        local.copy_(partition_of(saved[name], rank, local.numel()).to(local.dtype))
    return len(frozen)


class ZeroStrategy(DeepSpeedStrategy):
    """DeepSpeedStrategy whose ZeRO-3 resume restores the frozen parameters (the EMA) too."""

    strategy_name = "lit_diffusion_deepspeed"

    def load_checkpoint(self, checkpoint_path, weights_only=None):
        client_state = super().load_checkpoint(checkpoint_path, weights_only)
        if self.zero_stage_3 and Path(checkpoint_path).is_dir():
            restore_frozen_partitions(self.model.module, checkpoint_path, self.global_rank)
        return client_state
