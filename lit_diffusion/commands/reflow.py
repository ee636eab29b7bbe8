"""`lit-diffusion reflow --ckpt RF.ckpt --num N --out DIR [--sampler heun --nfe 33]`."""
from __future__ import annotations

import sys
from typing import Optional

from lit_diffusion.commands.parsing import command_line, run


def reflow(*, ckpt: str, num: int, out: str, sampler: str = "heun", nfe: int = 33, batch_size: int = 256,
           seed: int = 0, device: Optional[str] = None) -> int:
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
        out: output folder for the pair shards (replaced if it holds a dataset).
        sampler: ODE sampler that integrates the flow.
        nfe: network evaluations per sample.
        batch_size: samples per forward pass.
        seed: seed of the noise.
        device: torch device (default: cuda when available, else cpu).
    """
    import numpy as np
    import torch

    from lit_diffusion.data.sources import TensorPairSource
    from lit_diffusion.data.writer import BuildOptions, build_dataset, resolve_encode_options
    from lit_diffusion.generation import generate
    from lit_diffusion.training.loading import load_module

    arguments = dict(ckpt=ckpt, num=num, out=out, sampler=sampler, nfe=nfe, batch_size=batch_size, seed=seed)
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(ckpt).to(device)
    if module.sample_shape is None:
        raise SystemExit(f"lit-diffusion reflow: {ckpt} records no sample shape")
    if type(module.objective).__name__ != "RectifiedFlow":
        print(f"note: reflow from a {type(module.objective).__name__} model; the pairs are its ODE couplings",
              file=sys.stderr)
    # why: a conditional model sampled without labels gets the null class, untrained at label dropout 0
    num_classes = module.sample_classes
    noises, targets, labels = [], [], []
    for batch in generate(module.objective, module.ema.shadow, module.sample_shape, num, seed=seed,
                          batch_size=batch_size, device=device, sampler=sampler, nfe=nfe, num_classes=num_classes,
                          **module.sample_options):
        noises.append(batch.noise.numpy())
        targets.append(batch.x0.float().cpu().numpy())
        if batch.labels is not None:
            labels.append(batch.labels.cpu().numpy())
        print(f"reflow: {batch.indices[-1] + 1}/{num} pairs", file=sys.stderr)
    label_array = np.concatenate(labels).astype(np.int64) if labels else None
    class_names = [str(c) for c in range(num_classes)] if labels else []
    source = TensorPairSource(np.concatenate(noises).astype(np.float32), np.concatenate(targets).astype(np.float32),
                              label_array, class_names,
                              {"reflow_from": str(ckpt), "sampler": sampler, "nfe": nfe, "seed": seed,
                               "labels": "i mod classes" if labels else None})
    build = BuildOptions(out=out, workers=0, progress=False, overwrite=True)
    info = build_dataset(source, build, resolve_encode_options(source),
                         command=command_line(["lit-diffusion", "reflow"], arguments, reflow))["all"]
    print(f"{out}: {info.num_samples} pairs, shape {info.shape}, {len(info.shards)} shard(s), "
          f"fingerprint {info.fingerprint[:16]}")
    return 0


def main(argv: list[str]) -> int:
    from lit_diffusion.data.errors import BuildError

    return run(reflow, argv, "lit-diffusion reflow", errors=(ValueError, FileNotFoundError, BuildError),
               error_status=2)
