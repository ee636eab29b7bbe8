"""The batched sampling loop shared by every caller that turns noise into samples."""
from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence

import torch

from lit_diffusion.generation.noise import class_labels, rank_indices, sample_noise


class GeneratedBatch(NamedTuple):
    indices: list[int]  # the sample indices of this batch
    noise: torch.Tensor  # (B, *shape) the starting noise, on the CPU
    x0: torch.Tensor  # (B, *shape) the samples, on the sampling device
    labels: torch.Tensor | None  # (B,) classes on the CPU, or None for unconditional models
    nfe: int  # network evaluations per sample


def index_batches(num: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[tuple[int, list[int]]]:
    """(offset in this rank's share, indices) for each batch of this rank's indices."""
    if num < 1 or batch_size < 1:
        raise ValueError(f"need num >= 1 and batch_size >= 1, got {num}, {batch_size}")
    mine = rank_indices(num, rank, world_size)
    for start in range(0, len(mine), batch_size):
        yield start, mine[start:start + batch_size]


@torch.no_grad()
def generate(objective, net, shape: Sequence[int], num: int, *, seed: int = 0, batch_size: int = 256,
             num_classes: int = 0, label: int | None = None, device: str | torch.device = "cpu", rank: int = 0,
             world_size: int = 1, **sample_options) -> Iterator[GeneratedBatch]:
    """Samples of `objective` with network `net`, batch by batch, for this rank's indices.

    Noise and labels follow `generation.noise`; stochastic samplers (DDPM ancestral, consistency
    multistep) draw from a generator seeded with seed + the batch's offset in this rank's share.
    `sample_options` go to `objective.sample_with_info` (sampler, nfe, grid, guidance, ...).
    """
    device = torch.device(device)
    for start, idx in index_batches(num, batch_size, rank, world_size):
        noise = sample_noise(idx, shape, seed)
        labels = class_labels(idx, num_classes, label)
        out = objective.sample_with_info(net, noise.to(device), cond=None if labels is None else labels.to(device),
                                         generator=torch.Generator(device).manual_seed(seed + start), **sample_options)
        yield GeneratedBatch(idx, noise, out.x0, labels, out.nfe)
