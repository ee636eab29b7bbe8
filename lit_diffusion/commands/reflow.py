"""`lit-diffusion reflow --ckpt RF.ckpt --num N --out DIR [--sampler heun --nfe 33]`."""
from __future__ import annotations

import sys
from typing import Optional

from lit_diffusion.commands.parsing import run
from lit_diffusion.data.build import command_line, write_pairs


def reflow(*, ckpt: str, num: int, out: str, sampler: str = "heun", nfe: int = 33, batch_size: int = 256,
           seed: int = 0, device: Optional[str] = None, overwrite: bool = False) -> int:
    """The reflow step of rectified flow (Liu et al. 2022, Alg. 1): integrate the trained flow (EMA weights)
    from N noises and write the (noise, sample) couplings as pair shards.

    Noise i is the shared per-index noise of lit_diffusion.generation (seed, i), as in `sample`; a
    class-conditional model gets class i mod classes, as in `sample` (its null class never trained when the
    label dropout is 0), and the pair shards keep those labels, so the 2-rectified flow is conditional too. Train the
    next flow on the pairs with the rectified-flow config and `--data.train_shards DIR`, starting from the
    parent's weights with `--model.init_from RF.ckpt`.

    Args:
        ckpt: checkpoint of the trained flow (`lit-diffusion fit`).
        num: number of (noise, sample) pairs.
        out: output folder for the pair shards (refused if it holds a dataset, unless --overwrite).
        sampler: ODE sampler that integrates the flow.
        nfe: network evaluations per sample.
        batch_size: samples per forward pass.
        seed: seed of the noise.
        device: torch device (default: cuda when available, else cpu).
        overwrite: replace a dataset already in OUT (only once the new pairs are complete).
    """
    from pathlib import Path

    from lit_diffusion.data.writer import refuse_existing

    refuse_existing(Path(out), overwrite)  # first: say it now, not after minutes of loading and sampling
    from lit_diffusion.generation.session import GenerationSession, check_counts
    from lit_diffusion.training.loading import load_module

    arguments = dict(ckpt=ckpt, num=num, out=out, sampler=sampler, nfe=nfe, batch_size=batch_size, seed=seed)
    check_counts(num=num)
    session = GenerationSession.open(ckpt, load_module, command="lit-diffusion reflow", device=device)
    if type(session.module.objective).__name__ != "RectifiedFlow":
        print(f"note: reflow from a {type(session.module.objective).__name__} model; the pairs are its ODE couplings",
              file=sys.stderr)
    # classes i mod classes, as in `sample`: without labels a model gets its null class, untrained at dropout 0
    pairs = session.couplings(num, seed=seed, batch_size=batch_size, sampler=sampler, nfe=nfe,
                              **session.module.sample_options)
    description = {"reflow_from": str(ckpt), "sampler": sampler, "nfe": nfe, "seed": seed,
                   "labels": "i mod classes" if pairs.labels is not None else None}
    info = write_pairs(pairs.noise, pairs.x0, pairs.labels, session.num_classes, out=out, description=description,
                       command=command_line(["lit-diffusion", "reflow"], arguments, reflow), overwrite=overwrite)
    print(f"{out}: {info.num_samples} pairs, shape {info.shape}, {len(info.shards)} shard(s), "
          f"fingerprint {info.fingerprint[:16]}")
    return 0


def main(argv: list[str]) -> int:
    from lit_diffusion.data.errors import BuildError

    return run(reflow, argv, "lit-diffusion reflow", errors=(ValueError, FileNotFoundError, BuildError),
               error_status=2)
