"""DeepSpeed checkpoint folders behind the one door (runs/checkpoint_file.py).

Lightning's DeepSpeedStrategy saves a checkpoint as a folder: `latest` names a tag sub-folder holding the
module states (`mp_rank_00_model_states.pt` under ZeRO-2, one `zero_pp_rank_R_mp_rank_00_model_states.pt` per
rank under ZeRO-3), one optimiser-state partition per rank, and beside them every field Lightning and
lit_diffusion add to a checkpoint (step, images seen, model spec, data-stream position, RNG states).

The record is read from rank 0's module-states file (no weight is read). `full()` consolidates the folder into
the dict a single-file checkpoint holds: the fields as they are, and `state_dict` merged from the ranks'
partitions by DeepSpeed's own zero_to_fp32 utilities (float32, the trained parameters from the optimiser's
master copy, the frozen ones, such as the EMA's shadow, from their saved fragments). This runs in one process
without torch.distributed, so `sample`, `compare` and `--model.init_from` read a folder as they read a file, and
`consolidate` writes it once as a file (with its content hash) for tools that have no DeepSpeed installed.
Resuming a folder stays DeepSpeed's (the same --trainer.strategy; a ZeRO-3 folder on another number of ranks goes
through DeepSpeed's universal checkpoint, written beside the partitions under `universal_<tag>/`:
distributed/deepspeed_universal.py)."""
from __future__ import annotations

from pathlib import Path

import torch

from lit_diffusion.runs.content_hash import CheckpointError, content_hash
from lit_diffusion.runs.record import HASH_FIELD, RUN_FIELDS

LATEST = "latest"  # DeepSpeed's file naming the folder's current tag
# DeepSpeed's own keys in a module-states file: not part of a Lightning checkpoint's fields
ENGINE_KEYS = ("module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
               "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd", "sparse_tensor_module_names",
               "skipped_steps", "global_steps", "global_samples", "dp_world_size", "mp_world_size", "ds_config",
               "ds_version", "checkpoint_parallel_dimensions")


def is_deepspeed_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / LATEST).is_file()


def module_states_file(folder: Path) -> Path:
    """Rank 0's module-states file of the folder's latest tag."""
    tag = folder / (folder / LATEST).read_text().strip()
    names = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")
    for name in names:
        if (tag / name).is_file():
            return tag / name
    raise CheckpointError(f"{folder} is a DeepSpeed checkpoint folder whose tag {tag.name} holds none of "
                          f"{', '.join(names)}: it was not fully written; resume from an older checkpoint")


def fields(folder: Path) -> dict:
    """The checkpoint's fields without weights; `state_dict` holds shape-only (meta) tensors of the parameters
    the optimiser trains, so that the record counts the backbone's parameters."""
    states = torch.load(module_states_file(folder), map_location="cpu", weights_only=False)
    shapes = {}
    for group in states.get("param_shapes") or []:
        shapes.update({name: torch.empty(tuple(shape), device="meta") for name, shape in group.items()})
    out = {k: v for k, v in states.items() if k not in ENGINE_KEYS}
    out["state_dict"] = shapes
    return out


def consolidated(folder: Path) -> dict:
    """The folder as one single-file checkpoint dict (float32 weights, every field), with its content hash."""
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError as error:
        raise CheckpointError(f"{folder} is a DeepSpeed checkpoint folder and reading its weights needs the "
                              "`deepspeed` package: pip install 'lit_diffusion[deepspeed]', or convert it once "
                              "where it is installed (lit_diffusion.runs.deepspeed_folder.consolidate)") from error
    checkpoint = fields(folder)
    checkpoint.pop("optimizer_states", None)
    checkpoint["state_dict"] = dict(get_fp32_state_dict_from_zero_checkpoint(str(folder)))
    run = dict(checkpoint.get(RUN_FIELDS) or {})
    run.pop(HASH_FIELD, None)
    checkpoint[RUN_FIELDS] = run
    run[HASH_FIELD] = content_hash(checkpoint)
    return checkpoint


def consolidate(folder: str | Path, out: str | Path) -> Path:
    """Write the folder as one checkpoint file at `out` (atomically: a temporary file, then a rename)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(consolidated(Path(folder)), tmp)
    tmp.replace(out)
    return out
