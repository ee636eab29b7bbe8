"""Read a split once in stored order, each (rank, DataLoader worker) its contiguous range.

This is the one ordered stream shared by ``ShardDataModule``'s validation loader and the
evaluation ``SplitReader``: shards unshuffled, no shuffle buffer, no augmentation, the epoch
sequence cut into contiguous ranges per (rank, worker) and padded to whole batches by wrapping
around (see ``plan.py``). It imports no Lightning, so evaluation can read shards without it, and
it knows the epoch position of every batch, so a caller can drop the padding or stop early.
"""
from __future__ import annotations

from typing import Any, Iterator, Literal, Sequence

import torch
from torch.utils.data import DataLoader, IterableDataset

from .decode import SampleDecoder
from .plan import EpochPlan
from .stream import ShardIterable
from .urls import ShardSet, resolve_shards


def ordered_plan(counts: Sequence[int], batch_size: int, world_size: int, num_workers: int,
                 seed: int = 0) -> EpochPlan:
    """Every sample once in stored order, padded to whole batches so that every rank takes as many."""
    return EpochPlan(tuple(counts), batch_size, world_size, num_workers, seed, shuffle_shards=False, pad=True)


def make_loader(dataset: IterableDataset, num_workers: int, pin_memory: bool = False,
                prefetch_factor: int = 2) -> DataLoader:
    """The DataLoader over a ``ShardIterable``: the iterable batches itself (batch_size=None) and
    the plan assumes the DataLoader asks its workers in turn (in_order=True)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = dict(prefetch_factor=prefetch_factor, persistent_workers=False)
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                      in_order=True, **kwargs)


class OrderedShardReader:
    """One pass over ``shards`` in stored order: ``iter()`` yields this rank's ``len()`` batches.

    Args:
        shards: resolved shards (see ``from_spec`` for a folder, dataset.json or shard URLs).
        batch_size: samples per batch.
        num_workers: DataLoader worker processes (0: decode in this process).
        rank: this process's rank among ``world_size`` readers.
        world_size: the number of ranks sharing the pass.
        labels: return ``label`` (None: when dataset.json has classes).
        decoder: image decoder, "torchvision" or "pil".
        on_error: "raise" or "skip" (see ``errors.ErrorPolicy``).
        skip_counter: optional ``multiprocessing.Value`` counting skipped samples across workers.
        seed: seeds the per-sample augmentation seeds (unused without a transform; kept so the
            stream equals the DataModule's for its seed).
        pin_memory: DataLoader ``pin_memory``.
        prefetch_factor: batches prefetched by each worker.
    """

    def __init__(self, shards: ShardSet, batch_size: int, num_workers: int = 0, rank: int = 0,
                 world_size: int = 1, labels: bool | None = None,
                 decoder: Literal["torchvision", "pil"] = "torchvision",
                 on_error: Literal["raise", "skip"] = "raise", skip_counter=None, seed: int = 0,
                 pin_memory: bool = False, prefetch_factor: int = 2):
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.shards, self.rank = shards, rank
        self.plan = ordered_plan(shards.counts, batch_size, world_size, num_workers, seed)
        # built here so that a bad option (labels on an unlabeled set) fails before any worker starts
        self.decoder = SampleDecoder(shards.info, shards.info.labeled if labels is None else labels, decoder)
        self.num_workers, self.on_error, self.skip_counter = num_workers, on_error, skip_counter
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor

    @classmethod
    def from_spec(cls, spec: str, dataset_json: str | None = None, **kwargs) -> "OrderedShardReader":
        """A reader over a folder with dataset.json, a dataset.json, or shard URLs (see ``urls.py``)."""
        check = kwargs.get("on_error", "raise") == "raise"  # "skip" counts missing shards instead
        return cls(resolve_shards(spec, dataset_json, check_exists=check), **kwargs)

    @property
    def info(self):
        """The dataset.json of the shards."""
        return self.shards.info

    @property
    def num_samples(self) -> int:
        return self.shards.num_samples

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    def __len__(self) -> int:
        return self.plan.steps

    def batch_starts(self) -> list[int]:
        """Epoch position of the first sample of each batch this rank yields, in order.

        Positions at or past ``num_samples`` are the wrap-around padding.
        """
        workers = self.plan.workers
        starts = []
        for j in range(self.plan.steps):  # the DataLoader takes batch j from worker j % W
            w, k = j % workers, j // workers
            starts.append(self.plan.consumer_range(self.rank, w)[0] + k * self.plan.batch_size)
        return starts

    def dataset(self) -> ShardIterable:
        return ShardIterable(self.shards.urls, self.plan, self.decoder, self.rank, epoch=0, start_batch=0,
                             on_error=self.on_error, skip_counter=self.skip_counter)

    def __iter__(self) -> Iterator[dict]:
        # a generator, so the DataLoader (and its workers) starts on the first next(), not on iter()
        yield from make_loader(self.dataset(), self.num_workers, self.pin_memory, self.prefetch_factor)

    def with_positions(self) -> Iterator[tuple[torch.Tensor, dict]]:
        """``(positions (B,) int64, batch)`` for each batch: the epoch positions of its samples."""
        for start, batch in zip(self.batch_starts(), self):
            yield start + torch.arange(batch["x"].shape[0]), batch
