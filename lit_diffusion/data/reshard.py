"""The rest of an epoch interrupted under one layout (world size, per-rank batch size, workers), continued
under another: a run saved on 2 ranks resumes on 1, or on 4.

Why re-shard rather than re-derive a position: an epoch's samples are cut into one contiguous range per
(rank, worker) with a shuffle buffer each (``plan.py``), so what k steps of W ranks consumed is W prefixes of
W shuffled ranges, which no step count of another world size reproduces. Instead the rest is defined once,
by the layout the epoch started under (the origin): the origin's global batches k, k+1, ... (rank 0's batch,
then rank 1's, ...), flattened into one sequence of samples with their flip and transform seeds. Any later
layout cuts that sequence into its own global batches (``world_size * batch_size`` samples, rank r taking
the r-th slice), dropping the remainder that fills no whole global batch, as a training epoch does. When
the global batch is unchanged (2 ranks x 8 -> 1 rank x 16), every step sees exactly the samples of the
uninterrupted run. Each rank replays all origin ranks' streams to find its slice (reads, not decodes, the
others' samples) for the rest of this one epoch; the next epoch is planned for the new layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from torch.utils.data import IterableDataset, get_worker_info

from .plan import EpochPlan
from .stream import ShardIterable


@dataclass(frozen=True)
class EpochRest:
    origin: EpochPlan  # the plan the epoch started under
    done: int  # batches per rank consumed under the origin
    offset: int = 0  # samples of the rest consumed since, under later layouts

    @property
    def samples(self) -> int:
        """Samples of the rest (from the first change of layout on)."""
        return (self.origin.steps - self.done) * self.origin.world_size * self.origin.batch_size

    def steps(self, world_size: int, batch_size: int) -> int:
        """Batches per rank left in this epoch under a layout."""
        return (self.samples - self.offset) // (world_size * batch_size)

    def consumed(self, steps: int, world_size: int, batch_size: int) -> "EpochRest":
        """The rest after ``steps`` more steps under a layout."""
        return EpochRest(self.origin, self.done, self.offset + steps * world_size * batch_size)

    def to_state(self) -> dict:
        o = self.origin
        return {"world_size": o.world_size, "batch_size": o.batch_size, "num_workers": o.num_workers,
                "done": self.done, "offset": self.offset}

    @staticmethod
    def from_state(state: dict, plan: EpochPlan) -> "EpochRest":
        """From ``to_state``, with the origin's layout put into ``plan`` (same data, seed and epoch length)."""
        origin = EpochPlan(plan.counts, int(state["batch_size"]), int(state["world_size"]), int(state["num_workers"]),
                           plan.seed, plan.shuffle_shards, plan.samples_per_epoch, plan.pad)
        return EpochRest(origin, int(state["done"]), int(state["offset"]))


class RestIterable(IterableDataset):
    """The batches of one rank for the rest of an epoch under a new layout (see the module docstring).

    ``origin_streams``: one ShardIterable per origin rank, from batch 0 (each is replayed up to the rest)."""

    def __init__(self, rest: EpochRest, origin_streams: list[ShardIterable], rank: int, world_size: int,
                 batch_size: int):
        if len(origin_streams) != rest.origin.world_size:
            raise ValueError(f"{len(origin_streams)} origin streams for {rest.origin.world_size} origin ranks")
        self.rest, self.streams = rest, origin_streams
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def __len__(self) -> int:
        return self.rest.steps(self.world_size, self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return self._batches(worker, workers)

    def _batches(self, worker: int, workers: int) -> Iterator[dict]:
        steps, per_step = len(self), self.world_size * self.batch_size
        low, high = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        ranks = [s.rank_slots() for s in self.streams]
        index, batch = -self.rest.offset, []  # index: position in the rest after what is consumed
        try:
            for k, step in enumerate(zip(*ranks)):
                if k < self.rest.done:
                    continue  # consumed under the origin: replayed undecoded
                for slots in step:  # origin rank 0's batch, then rank 1's, ...
                    for slot in slots:
                        j, within = divmod(index, per_step)
                        index += 1
                        if j >= steps:
                            return  # the remainder that fills no whole global batch is dropped
                        if index <= 0 or j % workers != worker or not low <= within < high:
                            continue
                        batch.append(slot)
                        if len(batch) == self.batch_size:
                            yield self.streams[0].collate_slots(batch)
                            batch = []
        finally:
            for r in ranks:
                r.close()
