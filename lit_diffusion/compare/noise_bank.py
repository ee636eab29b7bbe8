"""The noise shared by every objective, sampler and seed of a comparison, so that differences in quality come
from the models and samplers, not from the draw. A thin description over `lit_diffusion.generation`: sample
i always gets the same noise and label, whatever the batch size or the number of ranks."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lit_diffusion.generation import class_labels, generate, index_batches, sample_noise


@dataclass(frozen=True)
class NoiseBank:
    """Args:
        shape: one sample's shape, e.g. (1, 28, 28).
        size: number of samples in the bank.
        seed: the bank's seed (generation.noise: sample i uses generator seed seed * 1_000_003 + i).
        num_classes: labels cycle through the classes (i % num_classes) for conditional models; 0: none.
    """

    shape: tuple[int, ...]
    size: int
    seed: int = 0
    num_classes: int = 0

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"NoiseBank: size must be >= 1, got {self.size}")
        if any(int(d) < 1 for d in self.shape):
            raise ValueError(f"NoiseBank: shape must be positive, got {tuple(self.shape)}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def batches(self, batch_size: int, rank: int = 0, world_size: int = 1):
        """(indices, noise, labels) for this rank's share (indices rank, rank + world, ...)."""
        for _, idx in index_batches(self.size, batch_size, rank, world_size):
            yield idx, sample_noise(idx, self.shape, self.seed), class_labels(idx, self.num_classes)

    def generate(self, objective, net, batch_size: int, device, **sample_options):
        """generation.generate over this bank: the same noise and labels, stochastic samplers seeded from the
        bank's seed."""
        return generate(objective, net, self.shape, self.size, seed=self.seed, batch_size=batch_size,
                        num_classes=self.num_classes, device=torch.device(device), **sample_options)
