"""The deterministic, resumable stream of batches of one (rank, worker) for one epoch.

Pipeline per consumer (see ``plan.py`` for which samples it reads)::

    shard pieces -> raw samples (checked, not decoded) -> shuffle buffer -> decode -> batches

Every random choice comes from generators seeded by (seed, epoch, rank, worker): the shard
order, the shuffle buffer and the per-sample augmentation seeds (one per output slot). Resuming
after k batches replays the raw pipeline for the outputs this worker already made and drops
them without decoding (with ``on_error="skip"`` they are decoded, so that the same bad samples
are dropped as before), then continues: the batches are exactly those of an uninterrupted run.

When samples are skipped (``on_error="skip"``) a consumer tops its quota up with the samples
that follow its range in the epoch sequence (they then appear twice in that epoch), so every
rank still takes the same number of steps.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .decode import SampleDecoder, Transform, collate
from .errors import DataError, ErrorPolicy
from .plan import TAG_AUGMENT, TAG_SHUFFLE, EpochPlan, rng_for
from .shardio import RawSample, read_shard


def shuffle_buffer(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """Classic reservoir-style shuffle: once ``size`` items are held, emit a random one per input."""
    if size <= 1:
        yield from items
        return
    buf: list = []
    draws, d = rng.random(4096), 0
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        if d == len(draws):
            draws, d = rng.random(4096), 0
        j = int(draws[d] * size)
        d += 1
        out, buf[j] = buf[j], item
        yield out
    for j in rng.permutation(len(buf)):
        yield buf[j]


class ShardIterable(IterableDataset):
    """Batches of one epoch for one rank; inside a DataLoader each worker makes its share.

    ``start_batch`` is the number of this rank's batches already consumed (resume).
    """

    def __init__(self, urls: list[str], plan: EpochPlan, decoder: SampleDecoder, rank: int,
                 epoch: int, start_batch: int = 0, shuffle_buffer: int = 0, hflip: bool = False,
                 transform: Transform | None = None, on_error: str = "raise", skip_counter=None):
        if len(urls) != len(plan.counts):
            raise ValueError(f"{len(urls)} shard URLs for {len(plan.counts)} counts")
        if not 0 <= start_batch <= plan.steps:
            raise ValueError(f"start_batch={start_batch} outside [0, {plan.steps}]")
        self.urls, self.plan, self.decoder = urls, plan, decoder
        self.rank, self.epoch, self.start_batch = rank, epoch, start_batch
        self.shuffle_size, self.hflip, self.transform = shuffle_buffer, hflip, transform
        self.on_error, self.skip_counter = on_error, skip_counter
        self.policy = ErrorPolicy(on_error, skip_counter)

    def __len__(self) -> int:
        return self.plan.steps - self.start_batch

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        num_workers = 1 if info is None else info.num_workers
        if num_workers != self.plan.workers:
            raise RuntimeError(f"stream planned for {self.plan.workers} worker(s) but runs in {num_workers}")
        # The DataLoader asks its workers in turn, starting with worker 0. Batch j of an epoch
        # belongs to worker j % W, so a stream resumed at batch k must start with worker k % W:
        # DataLoader worker i plays worker (i + k) % W.
        return self.worker_batches((worker + self.start_batch) % num_workers)

    # --------------------------------------------------------------- raw samples

    def _read(self, start: int, stop: int) -> Iterator[RawSample]:
        """Checked raw samples at positions [start, stop); bad ones are raised or skipped."""
        for piece in self.plan.pieces(self.epoch, start, stop):
            url = self.urls[piece.shard]
            got = 0
            samples = read_shard(url, piece.skip, piece.take, self.plan.counts[piece.shard])
            while True:
                try:
                    raw = next(samples)
                except StopIteration:
                    break
                except DataError as e:  # shard-level: unreadable, corrupt, truncated
                    self.policy.handle(e, piece.take - got)
                    break
                got += 1
                try:
                    self.decoder.check(raw)
                except DataError as e:
                    self.policy.handle(e)
                    continue
                yield raw

    def _raw_outputs(self, worker: int) -> Iterator[RawSample]:
        start, stop = self.plan.consumer_range(self.rank, worker)
        rng = rng_for(self.plan.seed, TAG_SHUFFLE, self.epoch, self.rank, worker)
        yield from shuffle_buffer(self._read(start, stop), self.shuffle_size, rng)
        # only reached when samples were skipped: top up from the following positions
        yield from self._read(stop, stop + self.plan.num_samples)
        raise DataError(f"no readable samples left to fill worker {worker} of rank {self.rank} "
                        f"(epoch {self.epoch}); too many samples were skipped")

    # --------------------------------------------------------------- batches

    def worker_outputs(self, worker: int) -> Iterator[tuple]:
        """Every output slot of ``worker`` in order, as (item, flip, seed): ``item`` is the raw sample, left
        to ``decode_item`` (decoded here instead with ``on_error="skip"``, where only decoding tells whether
        it fills a slot). Slot i's flip and seed depend only on (seed, epoch, rank, worker, i)."""
        quota = self.plan.worker_batches(worker) * self.plan.batch_size
        aug = rng_for(self.plan.seed, TAG_AUGMENT, self.epoch, self.rank, worker).integers(
            0, 2**62, size=quota, dtype=np.int64)
        flips = (aug & 1).astype(bool) if self.hflip else np.zeros(quota, dtype=bool)
        seeds = aug >> 1
        raws = self._raw_outputs(worker)
        made = 0
        try:
            while made < quota:
                item = next(raws)
                if self.policy.skip:
                    try:
                        item = self.decoder.decode(item)
                    except DataError as e:
                        self.policy.handle(e)
                        continue
                yield item, flips[made], seeds[made]
                made += 1
        finally:
            raws.close()  # closes the open shard (and stops a pipe: command)

    def decode_item(self, item) -> dict:
        return item if self.policy.skip else self.decoder.decode(item)  # on_error="raise": a bad one raises

    def collate_slots(self, slots: list[tuple]) -> dict:
        samples = [self.decode_item(item) for item, _, _ in slots]
        flips = np.array([flip for _, flip, _ in slots], dtype=bool)
        seeds = np.array([seed for _, _, seed in slots], dtype=np.int64)
        return collate(samples, flips, self.decoder.info.kind, self.transform, seeds)

    def rank_slots(self) -> Iterator[list[tuple]]:
        """This rank's batches of the epoch as undecoded slots, in the order a DataLoader over all its
        workers yields them (batch j from worker j % W); for re-sharding the rest of an epoch."""
        outputs = [self.worker_outputs(w) for w in range(self.plan.workers)]
        try:
            for j in range(self.plan.steps):
                source = outputs[j % self.plan.workers]
                yield [next(source) for _ in range(self.plan.batch_size)]
        finally:
            for o in outputs:
                o.close()

    def worker_batches(self, worker: int) -> Iterator[dict]:
        """The batches of ``worker`` (0 when num_workers=0), resuming after ``start_batch``."""
        batch_size = self.plan.batch_size
        done = self.plan.worker_batches(worker, self.start_batch) * batch_size
        outputs = self.worker_outputs(worker)
        batch: list[tuple] = []
        try:
            for i, slot in enumerate(outputs):
                if i < done:  # resume: drop outputs already consumed, undecoded
                    continue
                batch.append(slot)
                if len(batch) == batch_size:
                    yield self.collate_slots(batch)
                    batch = []
        finally:
            outputs.close()
