"""A seeded bank of standard-normal noise shared by every objective and sampler of a comparison, so that
differences in quality come from the models and samplers, not from the draw. Sample i always gets the
same noise (its own generator seed), whatever the batch size or the number of ranks."""
from __future__ import annotations

import torch

from lit_diffusion.training.sample_cli import noise_for


class NoiseBank:
    """Args:
        shape: one sample's shape, e.g. (1, 28, 28).
        size: number of samples in the bank.
        seed: the bank's seed; sample i uses generator seed seed * 1_000_003 + i.
        num_classes: labels cycle through the classes (i % num_classes) for conditional models; 0: none.
    """

    def __init__(self, shape: tuple[int, ...], size: int, seed: int = 0, num_classes: int = 0):
        if size < 1:
            raise ValueError(f"NoiseBank: size must be >= 1, got {size}")
        if any(int(d) < 1 for d in shape):
            raise ValueError(f"NoiseBank: shape must be positive, got {tuple(shape)}")
        self.shape, self.size, self.seed, self.num_classes = tuple(int(d) for d in shape), int(size), int(seed), num_classes

    def noise(self, indices) -> torch.Tensor:
        return noise_for([int(i) for i in indices], self.shape, self.seed)  # the noise `lit-diffusion sample` uses

    def labels(self, indices) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        return torch.tensor([int(i) % self.num_classes for i in indices])

    def batches(self, batch_size: int, rank: int = 0, world_size: int = 1):
        """(indices, noise, labels) for this rank's share (indices rank, rank + world, ...)."""
        mine = list(range(rank, self.size, world_size))
        for start in range(0, len(mine), batch_size):
            idx = mine[start:start + batch_size]
            yield idx, self.noise(idx), self.labels(idx)
