"""Which samples each (rank, worker) reads in an epoch: a pure function of the shard counts and
(seed, epoch, world size, workers, batch size).

The epoch's sample sequence is the concatenation of passes over the data; pass p visits the
shards in a permutation drawn from (seed, epoch, p) (identity when shards are not shuffled) and
each shard's samples in stored order. An epoch uses the first ``steps * world_size * batch_size``
positions of that sequence, where ``steps`` (batches per rank) is

    floor(samples_per_epoch / (world_size * batch_size))   for training (the remainder is dropped;
                                                           which samples it holds changes each epoch)
    ceil(num_samples / (world_size * batch_size))           for validation (padded by wrapping around)

These positions are cut into contiguous ranges, one per consumer (rank r, worker w), in the
order r = 0.., w = 0..; worker w of a rank makes ``steps // W + (w < steps % W)`` batches, which is
exactly what a DataLoader's round-robin over W workers asks for, so every rank takes the same
number of steps and, when nothing is skipped, every sample is read once per epoch (training,
samples_per_epoch <= num_samples and divisible). Ranges are split at sample granularity, so shards
need not divide evenly; a consumer starting inside a shard skips its first samples undecoded.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

TAG_SHARDS, TAG_SHUFFLE, TAG_AUGMENT = 1, 2, 3


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, *keys): no global RNG anywhere in the data path."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


@dataclass(frozen=True)
class Piece:
    shard: int  # index into the shard list
    skip: int  # samples of the shard to pass over
    take: int  # samples to read after those


@dataclass(frozen=True)
class EpochPlan:
    counts: tuple[int, ...]  # samples per shard, from dataset.json
    batch_size: int
    world_size: int
    num_workers: int  # DataLoader workers per rank (0 counts as 1)
    seed: int
    shuffle_shards: bool = True
    samples_per_epoch: int | None = None
    pad: bool = False  # validation: ceil and wrap instead of floor and drop

    def __post_init__(self):
        if not self.counts or min(self.counts) <= 0:
            raise ValueError("every shard must hold at least one sample")
        if self.batch_size < 1 or self.world_size < 1:
            raise ValueError("batch_size and world_size must be >= 1")
        if self.steps < 1:
            raise ValueError(f"batch_size * world_size = {self.batch_size * self.world_size} is more than the "
                             f"{self.epoch_samples} samples per epoch: not one full batch per rank")

    @property
    def num_samples(self) -> int:
        return sum(self.counts)

    @property
    def workers(self) -> int:
        return max(1, self.num_workers)

    @property
    def epoch_samples(self) -> int:
        return self.samples_per_epoch or self.num_samples

    @property
    def steps(self) -> int:
        """Batches per rank per epoch (the same on every rank)."""
        per_step = self.world_size * self.batch_size
        if self.pad:
            return math.ceil(self.epoch_samples / per_step)
        return self.epoch_samples // per_step

    def worker_batches(self, worker: int, steps: int | None = None) -> int:
        """Batches that ``worker`` makes among the first ``steps`` of a rank (round-robin)."""
        steps = self.steps if steps is None else steps
        return steps // self.workers + (worker < steps % self.workers)

    def consumer_range(self, rank: int, worker: int) -> tuple[int, int]:
        """Positions [start, stop) of the epoch sequence that (rank, worker) reads."""
        start = rank * self.steps * self.batch_size
        start += sum(self.worker_batches(w) for w in range(worker)) * self.batch_size
        return start, start + self.worker_batches(worker) * self.batch_size

    def shard_order(self, epoch: int, pass_: int) -> np.ndarray:
        n = len(self.counts)
        if not self.shuffle_shards:
            return np.arange(n)
        return rng_for(self.seed, TAG_SHARDS, epoch, pass_).permutation(n)

    def pieces(self, epoch: int, start: int, stop: int) -> Iterator[Piece]:
        """Pieces of shards covering positions [start, stop) of the epoch sequence, in order."""
        n = self.num_samples
        pos = start
        while pos < stop:
            pass_, offset = divmod(pos, n)
            order = self.shard_order(epoch, pass_)
            ends = np.cumsum([self.counts[s] for s in order]).tolist()
            i = bisect.bisect_right(ends, offset)
            while i < len(order) and pos < stop:
                begin = ends[i] - self.counts[order[i]]
                skip = offset - begin
                take = min(ends[i] - offset, stop - pos)
                yield Piece(int(order[i]), skip, take)
                pos += take
                offset += take
                i += 1
