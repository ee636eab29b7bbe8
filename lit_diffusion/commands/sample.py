"""`lit-diffusion sample --ckpt PATH [--sampler NAME --nfe N] --num K [--cfg S] --out DIR`, and edits:
`lit-diffusion sample --ckpt PATH --edit sdedit|inpaint --input IMAGES [--mask MASKS] [--t0 T] --out DIR`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from lit_diffusion.commands.parsing import run


def sample(*, ckpt: str, out: str, sampler: Optional[str] = None, nfe: Optional[int] = None, num: Optional[int] = None,
           cfg: float = 1.0, label: Optional[int] = None, seed: int = 0, batch_size: int = 256,
           raw_weights: bool = False, device: Optional[str] = None, autoencoder: Optional[str] = None,
           x0_threshold: str = "default", edit: Optional[str] = None, input: Optional[str] = None,
           mask: Optional[str] = None, t0: Optional[float] = None, jump: int = 10, resample: int = 10) -> int:
    """Generate samples from a checkpoint: one PNG each, grid.png and samples.npz (uint8 images, labels).

    Sample i starts from the noise of (seed, i) and gets class i mod classes (lit_diffusion.generation), so
    the output depends on neither the batch size nor how many devices share the work: under torchrun / srun
    each rank generates the indices rank, rank + world, ...

    With --edit, input image i is edited instead (one output each, with the noise of (seed, i)): `sdedit` noises it
    to --t0 and solves back (Meng et al. 2022); `inpaint` repaints where --mask is white (RePaint, Lugmayr et al.
    2022). Formats of IMAGES and MASKS: docs/editing.md.

    Args:
        ckpt: checkpoint written by `lit-diffusion fit`.
        out: output folder.
        sampler: sampler name (default: the objective's; for inpaint one with single steps, else ddpm).
        nfe: network evaluations per sample (default: the objective's); for inpaint the grid's steps, before
            resampling.
        num: number of samples (default 64; not with --edit: one output per input).
        cfg: classifier-free guidance scale (1: none).
        label: class of every sample (default: cycle through the classes; edits of a conditional model need it,
            or an --input .npz with labels).
        seed: seed of the noise.
        batch_size: samples per forward pass.
        raw_weights: use the raw weights instead of the EMA.
        device: torch device (default: cuda when available, else cpu).
        autoencoder: latent models: where their autoencoder is now (default: the location recorded at training;
            its weights must be the recorded ones). Samples are decoded to images before they are saved.
        x0_threshold: "default" (the objective's choice for image data: DDPM with eps prediction clips x0, as Ho et
            al. 2020 do), "none", "clip" or "dynamic" (Saharia et al. 2022); image data in [-1, 1] only.
        edit: "sdedit" or "inpaint": edit the --input images instead of sampling from noise.
        input: the images to edit: a folder of PNGs, a PNG, or a .npy/.pt/.npz file (samples.npz works).
        mask: inpaint: where to paint (white / 1) and keep (black / 0): PNGs or an array file, one or one per image.
        t0: the time the edit starts from, in (0, 1] (default: 0.5 for sdedit, 1 for inpaint).
        jump: inpaint: RePaint's jump length, in grid steps.
        resample: inpaint: how often each jump is traversed (1: no resampling).
    """
    from lit_diffusion.generation.session import GenerationSession, check_counts
    from lit_diffusion.training.loading import load_module

    check_counts(num=num, nfe=nfe, batch_size=batch_size)
    session = GenerationSession.open(ckpt, load_module, command="lit-diffusion sample", device=device,
                                     raw_weights=raw_weights, autoencoder=autoencoder, share=True)
    session.check_conditioning(label, cfg)
    threshold = session.x0_threshold(x0_threshold)
    if edit is not None:
        images, masks, labels = session.edit_inputs(edit, input, mask, label, num)
        t0 = (0.5 if edit == "sdedit" else 1.0) if t0 is None else t0
        steps = {"jump": jump, "resample": resample} if edit == "inpaint" else {}
        nfe_used = session.write_edits(Path(out), edit, images, masks, labels, seed=seed, batch_size=batch_size,
                                       t0=t0, sampler=sampler, nfe=nfe, guidance=cfg, **steps, **threshold)
        if session.rank == 0:
            print(f"wrote {len(images)} {edit} edits from t0 = {t0} ({nfe_used} NFE) to {Path(out)} (PNGs, grid.png, "
                  f"samples.npz)")
        return 0
    for name, value in (("input", input), ("mask", mask), ("t0", t0)):
        if value is not None:
            raise ValueError(f"--{name} applies to edits: add --edit sdedit or --edit inpaint")
    num = 64 if num is None else num
    session.load_autoencoder()
    nfe_used = session.write_samples(Path(out), num, seed=seed, batch_size=batch_size, label=label, sampler=sampler,
                                     nfe=nfe, guidance=cfg, **threshold)
    if session.rank == 0:
        print(f"wrote {num} samples ({nfe_used} NFE, sampler {sampler or session.module.objective.default_sampler}, "
              f"x0 threshold {threshold.get('x0_threshold') or 'none'}) to {Path(out)} (PNGs, grid.png, samples.npz)")
    return 0


def main(argv: list[str]) -> int:
    from lit_diffusion.data.errors import WriteError

    return run(sample, argv, "lit-diffusion sample", errors=(ValueError, FileNotFoundError, WriteError),
               error_status=2)
