"""Generate evaluation samples spread over ranks, with noise fixed per sample index.

Sample i always starts from the same noise, drawn from a generator seeded by (seed, i) (numpy's
SeedSequence, so no two (seed, i) pairs share a stream), and, for class-conditional models, is
generated for class i mod num_classes (balanced classes). The samples therefore do not depend on
the world size or the batch size, and two models evaluated with the same seed see the same noise.
Rank r generates the contiguous indices [r N / W, (r + 1) N / W).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from lit_diffusion.data.plan import rng_for

from ._dist import gather_rows, rank_world, share

SampleFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def sample_noise(indices: Sequence[int], shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Standard normal noise (len(indices), *shape), float32; row j depends only on (seed, indices[j])."""
    rows = [rng_for(seed, int(i)).standard_normal(tuple(shape), dtype=np.float32) for i in indices]
    return torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, *shape)


def generate_samples(sample_fn: SampleFn, noise_shape: Sequence[int], num_samples: int, *, batch_size: int = 256,
                     seed: int = 0, num_classes: int | None = None, device: str | torch.device | None = None,
                     gather: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(samples, labels) from ``sample_fn(noise (B, *noise_shape), labels (B,) or None) -> (B, ...)``.

    ``gather=True``: every rank returns all ``num_samples`` samples (CPU, index order);
    ``gather=False``: each rank returns its own share (pass it to ``evaluate_samples(...,
    local_samples=True)``). Labels are None for unconditional generation (``num_classes=None``).
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"generate_samples: num_samples and batch_size must be >= 1, got {num_samples}, {batch_size}")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"generate_samples: num_classes must be >= 1 or None, got {num_classes}")
    rank, world = rank_world()
    start, stop = share(num_samples, rank, world)
    device = torch.device(device or "cpu")
    outs, labs = [], []
    for b in range(start, stop, batch_size):
        idx = list(range(b, min(b + batch_size, stop)))
        noise = sample_noise(idx, noise_shape, seed).to(device)
        y = torch.tensor(idx, dtype=torch.int64) % num_classes if num_classes is not None else None
        with torch.no_grad():
            out = sample_fn(noise, None if y is None else y.to(device))
        if out.shape[0] != len(idx):
            raise ValueError(f"generate_samples: sample_fn returned {out.shape[0]} samples for a batch of {len(idx)}")
        outs.append(out.detach().cpu())
        if y is not None:
            labs.append(y)
    samples = torch.cat(outs) if outs else torch.empty(0)
    labels = torch.cat(labs) if labs else (torch.empty(0, dtype=torch.int64) if num_classes is not None else None)
    if gather:
        samples = gather_rows(samples)
        labels = gather_rows(labels) if labels is not None else None
    return samples, labels
