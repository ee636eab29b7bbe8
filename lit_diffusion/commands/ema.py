"""`lit-diffusion ema RUN [--sigma_rel S --out FILE.ckpt] [--at_step N] [--ckpt BASE.ckpt]`: post-hoc EMA."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from lit_diffusion.commands.parsing import run


def ema(run_dir: str, *, sigma_rel: Optional[float] = None, out: Optional[str] = None, at_step: Optional[int] = None,
        ckpt: Optional[str] = None) -> int:
    """Post-hoc EMA (Karras et al. 2024, EDM2 sec. 3): reconstruct the EMA of any width after training.

    The run must have written snapshots with the PostHocEMASnapshots callback (RUN/ema_snapshots).
    Without --sigma_rel: list the snapshots. With --sigma_rel and --out: write a copy of the run's checkpoint
    whose EMA weights are the reconstruction, for `lit-diffusion sample --ckpt FILE.ckpt` and the like.

        lit-diffusion ema runs/digits-dit
        lit-diffusion ema runs/digits-dit --sigma_rel 0.08 --out runs/digits-dit/ema_0.08.ckpt

    Args:
        run_dir: the run folder (trainer.default_root_dir of the fit).
        sigma_rel: EMA width relative to training length, in (0, 0.2887).
        out: the checkpoint to write (keep it outside RUN/checkpoints, where a resume would pick it up).
        at_step: reconstruct at this snapshot step (default: the last one).
        ckpt: the checkpoint to copy (default: RUN/checkpoints/last.ckpt).
    """
    from lit_diffusion.runs import RunDirectory
    from lit_diffusion.training.ema_export import export_base, write_ema_checkpoint
    from lit_diffusion.training.posthoc_ema import list_snapshots, reconstruct_ema

    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    if sigma_rel is None:
        if out is not None:
            raise ValueError("--out needs --sigma_rel: the EMA width to reconstruct")
        snapshots = list_snapshots(run_dir)
        for s in snapshots:
            print(f"step {s.global_step:>8}  images {s.images_seen:>10}  sigma_rel {s.sigma_rel:.4f}  {s.path.name}")
        print(f"{len(snapshots)} snapshot(s) in {RunDirectory(run_dir).ema_snapshots}")
        return 0
    if out is None:
        raise ValueError("--sigma_rel needs --out FILE.ckpt: where to write the checkpoint with the reconstructed EMA")
    list_snapshots(run_dir)  # no snapshots: say so before anything else
    base = export_base(RunDirectory(run_dir), ckpt, out)
    result = reconstruct_ema(run_dir, sigma_rel, at_step)
    step = write_ema_checkpoint(base, result, out)
    note = "" if step == result.step else f" (note: {base.name} is at step {step}, its non-EMA state is from there)"
    print(json.dumps(result.summary()))
    print(f"{out}: EMA sigma_rel {sigma_rel} at step {result.step} from {len(result.coefficients)} snapshot(s), "
          f"profile residual {result.relative_residual:.2e}{note}")
    return 0


def main(argv: list[str]) -> int:
    return run(ema, argv, "lit-diffusion ema", errors=(ValueError, FileNotFoundError), error_status=2)
