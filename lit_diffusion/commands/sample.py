"""`lit-diffusion sample --ckpt PATH [--sampler NAME --nfe N] --num K [--cfg S] --out DIR`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from lit_diffusion.commands.parsing import run


def sample(*, ckpt: str, out: str, sampler: Optional[str] = None, nfe: Optional[int] = None, num: int = 64,
           cfg: float = 1.0, label: Optional[int] = None, seed: int = 0, batch_size: int = 256,
           raw_weights: bool = False, device: Optional[str] = None, autoencoder: Optional[str] = None,
           x0_threshold: str = "default") -> int:
    """Generate samples from a checkpoint: one PNG each, grid.png and samples.npz (uint8 images, labels).

    Sample i starts from the noise of (seed, i) and gets class i mod classes (lit_diffusion.generation), so
    the output depends on neither the batch size nor how many devices share the work: under torchrun / srun
    each rank generates the indices rank, rank + world, ...

    Args:
        ckpt: checkpoint written by `lit-diffusion fit`.
        out: output folder.
        sampler: sampler name (default: the objective's).
        nfe: network evaluations per sample (default: the objective's).
        num: number of samples.
        cfg: classifier-free guidance scale (1: none).
        label: class of every sample (default: cycle through the classes).
        seed: seed of the noise.
        batch_size: samples per forward pass.
        raw_weights: use the raw weights instead of the EMA.
        device: torch device (default: cuda when available, else cpu).
        autoencoder: latent models: where their autoencoder is now (default: the location recorded at training;
            its weights must be the recorded ones). Samples are decoded to images before they are saved.
        x0_threshold: "default" (the objective's choice for image data: DDPM with eps prediction clips x0, as Ho et
            al. 2020 do), "none", "clip" or "dynamic" (Saharia et al. 2022); image data in [-1, 1] only.
    """
    from lit_diffusion.generation.session import GenerationSession, check_counts
    from lit_diffusion.training.loading import load_module

    check_counts(num=num, nfe=nfe, batch_size=batch_size)
    session = GenerationSession.open(ckpt, load_module, command="lit-diffusion sample", device=device,
                                     raw_weights=raw_weights, autoencoder=autoencoder, share=True)
    session.check_conditioning(label, cfg)
    threshold = session.x0_threshold(x0_threshold)
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
