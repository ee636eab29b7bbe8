"""Resuming a DeepSpeed ZeRO-3 folder on another number of ranks, through DeepSpeed's universal checkpoint.

DeepSpeed restores ZeRO-3 partitions only onto the rank count that wrote them; to re-partition it has its
"universal" format (deepspeed.checkpoint.ds_to_universal: every trained parameter whole, with its float32 master
copy and Adam moments, one folder per parameter) and `checkpoint.load_universal`, which cuts them into the new
ranks' partitions. Two things that format leaves out are put back here, from the saved folder itself:
- frozen parameters (the EMA's shadow model, training/ema.py): the universal load skips the module state, so
  they would stay at their initial values;
- buffers (the EMA's update count): the same.
(ZeRO-3's universal load, deepspeedai/DeepSpeed#5475, restores the optimised parameters only.)
Both are read whole with DeepSpeed's zero_to_fp32 merge and cut into this rank's partitions (distributed/shards).

The universal copy is written once, by rank 0, beside the partitions in the same checkpoint folder (tag
`universal_<the tag it was converted from>`, named by `latest_universal`, DeepSpeed's convention), and reused by
later resumes of that tag only: a folder saved again under a new tag is converted again, never resumed from the
older copy. It costs about 16 bytes per trained parameter on disk. A resume on the saved rank count still reads
the partitions."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from lit_diffusion.distributed.shards import shard_of

LATEST_UNIVERSAL = "latest_universal"  # DeepSpeed reads the universal tag's name from this file


def write_universal(folder: str | Path) -> Path:
    """Convert the folder's latest tag to DeepSpeed's universal format beside it (once per tag); returns the
    universal tag's folder."""
    folder = Path(folder)
    tag = (folder / "latest").read_text().strip()
    name = f"universal_{tag}"
    out, marker = folder / name, folder / LATEST_UNIVERSAL
    if marker.is_file() and marker.read_text().strip() == name and out.is_dir():
        return out
    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    shutil.rmtree(out, ignore_errors=True)  # what an interrupted conversion left: never named by the marker
    ds_to_universal(argparse.Namespace(input_folder=str(folder / tag), output_folder=str(out), num_extract_workers=1,
                                       num_merge_workers=1, keep_temp_folder=False, strict=True,
                                       inject_missing_state=False))
    marker.write_text(name)  # last: a folder whose marker names another tag (or none) is converted again
    return out


@torch.no_grad()
def restore_frozen_and_buffers(module: torch.nn.Module, folder: str | Path) -> int:
    """Copy the folder's frozen parameters (this rank's partitions) and buffers into `module` (the engine's
    module); returns how many tensors were restored."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    saved = get_fp32_state_dict_from_zero_checkpoint(str(folder))
    restored = 0
    for name, param in module.named_parameters():
        if param.requires_grad or name not in saved:
            continue
        local = param.ds_tensor if hasattr(param, "ds_tensor") else param.data
        local.copy_(shard_of(param, saved[name].to(local.dtype)))
        restored += 1
    for name, buffer in module.named_buffers():
        if name in saved:
            buffer.copy_(saved[name].to(buffer.dtype))
            restored += 1
    return restored
