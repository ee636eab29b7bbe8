"""Per-index noise and labels: sample i always starts from the same noise and gets the same class.

Sample i draws its noise from a torch generator seeded with seed * 1_000_003 + i (a prime stride, so
that seeds s and s + 1 never share a stream for the index counts used in practice), and rank r of W
takes the indices r, r + W, r + 2W, ...: the output depends on neither the batch size nor the world size.
"""
from __future__ import annotations

from typing import Sequence

import torch

SEED_STRIDE = 1_000_003


def sample_noise(indices: Sequence[int], shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Standard normal noise (len(indices), *shape), float32 on the CPU; row j depends only on (seed, indices[j])."""
    shape = tuple(int(d) for d in shape)
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(seed * SEED_STRIDE + int(i))) for i in indices]
    return torch.stack(rows) if rows else torch.empty(0, *shape)


def rank_indices(num: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """The sample indices this rank generates: rank, rank + world_size, ... below num."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    return list(range(rank, num, world_size))


def class_labels(indices: Sequence[int], num_classes: int, label: int | None = None) -> torch.Tensor | None:
    """Balanced classes (index i gets class i mod num_classes), or one `label` for all; None when unconditional."""
    if not num_classes:
        return None
    if label is not None:
        if not 0 <= label < num_classes:
            raise ValueError(f"label {label} is outside the model's {num_classes} classes")
        return torch.full((len(indices),), int(label), dtype=torch.int64)
    return torch.tensor([int(i) % num_classes for i in indices], dtype=torch.int64)
