"""A post-hoc EMA written as a checkpoint: a copy of a run's checkpoint whose EMA weights are a reconstruction
from the run's snapshots (training.posthoc_ema), so that `sample`, compare and the like read it like any other.

The EMA lives in the module's state_dict under `ema.shadow.` (training.ema); this is the one place outside the
module that writes those keys."""
from __future__ import annotations

from pathlib import Path

from lit_diffusion.runs import CheckpointError, RunDirectory, open_checkpoint
from lit_diffusion.runs.file_format import expect_kind
from lit_diffusion.runs.record import DIFFUSION_MODEL
from lit_diffusion.training.checkpointing import AtomicCheckpointIO
from lit_diffusion.training.posthoc_ema import ReconstructedEMA

EMA_PREFIX = "ema.shadow."


def export_base(run: RunDirectory, ckpt: str | None, out: str | Path) -> Path:
    """The checkpoint to copy (`ckpt`, default the run's last), checked to exist; `out` must not lie in the run's
    checkpoint folder, where a resume would pick it up."""
    base = Path(ckpt) if ckpt is not None else run.last_checkpoint
    if not base.exists():  # a file, or a sharded folder (FSDP2, DeepSpeed) that the door reads as one
        raise FileNotFoundError(f"checkpoint {base} does not exist; pass --ckpt FILE (a checkpoint of this run)")
    if Path(out).resolve().parent == run.checkpoints.resolve():
        raise ValueError(f"--out {out} is in {run.checkpoints}, where `fit --ckpt_path last` would resume from it; "
                         "write it elsewhere (e.g. the run folder itself)")
    try:  # a web page or an autoencoder given as --ckpt: said in one line, nothing unpickled
        expect_kind(open_checkpoint(base).record, DIFFUSION_MODEL, "the EMA export (--ckpt)")
    except CheckpointError as error:
        raise ValueError(str(error)) from None
    return base


def write_ema_checkpoint(base: Path, ema: ReconstructedEMA, out: str | Path) -> int:
    """Write `base` with its EMA weights replaced by `ema` (in the EMA's dtypes) and the reconstruction recorded
    under "posthoc_ema" to `out`, atomically; returns the global step `base` was saved at (-1 when unrecorded)."""
    checkpoint = open_checkpoint(base).full()
    state = checkpoint["state_dict"]
    missing = [k for k in ema.state_dict if f"{EMA_PREFIX}{k}" not in state]
    if missing:
        raise ValueError(f"the snapshots do not fit {base}: keys {missing[:3]} are not in its EMA")
    for key, value in ema.state_dict.items():
        state[f"{EMA_PREFIX}{key}"] = value.to(state[f"{EMA_PREFIX}{key}"].dtype)
    checkpoint["posthoc_ema"] = ema.summary() | {"coefficients": ema.coefficients}
    AtomicCheckpointIO().save_checkpoint(checkpoint, out)
    return int(checkpoint.get("global_step", -1))
